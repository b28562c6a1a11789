// Idle time-out: warns before the server's idle limit and then signs out.
//
// The server decides (accounts/middleware.py); this module only asks how
// long is left. Its status checks (GET) are not activity, so an unattended
// screen still times out. Keyboard and pointer input that made no request
// of its own (scrolling through frames already loaded) is reported with a
// POST at most once a minute: that is the user, so it counts.

const dialog = document.getElementById("session-timeout");

if (dialog) {
  const statusUrl = dialog.dataset.statusUrl;
  const csrfToken = dialog.dataset.csrfToken;
  const warnMs = Number(dialog.dataset.warnSeconds) * 1000;
  const countdown = dialog.querySelector("[data-countdown]");
  const INPUT_REPORT_MS = 60 * 1000;

  let deadline = Date.now() + warnMs * 2;
  let timer = 0;
  let ticker = 0;
  let lastReport = Date.now();

  const signOut = () => {
    const form = document.getElementById("sign-out-form");
    if (form) {
      form.submit();
    } else {
      window.location.reload();
    }
  };

  const hideWarning = () => {
    window.clearInterval(ticker);
    ticker = 0;
    if (dialog.open) {
      dialog.close();
    }
  };

  const showWarning = () => {
    const update = () => {
      const left = Math.max(0, Math.ceil((deadline - Date.now()) / 1000));
      countdown.textContent = String(left);
      if (left === 0) {
        hideWarning();
        signOut();
      }
    };
    update();
    if (!dialog.open) {
      dialog.showModal();
    }
    if (!ticker) {
      ticker = window.setInterval(update, 1000);
    }
  };

  const schedule = () => {
    window.clearTimeout(timer);
    const left = deadline - Date.now();
    if (left <= warnMs) {
      showWarning();
      // Another tab may still be in use: ask again before signing out.
      timer = window.setTimeout(check, Math.max(1000, left - 2000));
      return;
    }
    hideWarning();
    timer = window.setTimeout(check, left - warnMs);
  };

  const ask = async (method) => {
    const response = await fetch(statusUrl, {
      method,
      credentials: "same-origin",
      headers: method === "POST" ? { "X-CSRFToken": csrfToken } : {},
    });
    if (response.status === 401) {
      signOut();
      return;
    }
    if (!response.ok) {
      return;
    }
    const state = await response.json();
    const seconds = Math.min(state.idle_seconds_left, state.absolute_seconds_left);
    deadline = Date.now() + seconds * 1000;
    schedule();
  };

  const check = () => {
    ask("GET").catch(() => {
      timer = window.setTimeout(check, 10000);
    });
  };

  const reportInput = () => {
    if (dialog.open || Date.now() - lastReport < INPUT_REPORT_MS) {
      return;
    }
    lastReport = Date.now();
    ask("POST").catch(() => {});
  };

  dialog.querySelector("[data-stay]").addEventListener("click", () => {
    lastReport = Date.now();
    ask("POST").catch(() => {});
  });
  for (const type of ["keydown", "pointerdown", "wheel"]) {
    window.addEventListener(type, reportInput, { passive: true });
  }
  dialog.addEventListener("cancel", (event) => event.preventDefault());
  check();
}
