// Report editor: autosave over the REST API, live updates over a websocket.
// Strings come from the JSON script tag #report-strings, rendered translated.

const SAVE_DELAY_MS = 800;
const RECONNECT_MS = 3000;

const root = document.getElementById("report-editor");
const strings = JSON.parse(document.getElementById("report-strings").textContent);
const textArea = document.getElementById("report-text");
const statusBadge = document.getElementById("report-status");
const saveState = document.getElementById("save-state");
const signedLine = document.getElementById("signed-line");
const deliveryState = document.getElementById("delivery-state");
const signButton = document.getElementById("sign-button");
const signForm = document.getElementById("sign-form");
const signOtp = document.getElementById("sign-otp");
const signCancel = document.getElementById("sign-cancel");
const signError = document.getElementById("sign-error");

const apiUrl = root.dataset.apiUrl;
const csrfToken = root.dataset.csrfToken;
const mayWrite = root.dataset.mayWrite === "true";

// The last state the server confirmed; local edits are compared against it.
let serverText = textArea.value;
let serverVersion = Number(root.dataset.version);
let status = root.dataset.status;
let saveTimer = null;
let saving = false;
let inFlightText = null;

function format(template, values) {
  return template.replace(/%\((\w+)\)s/g, (_, name) => String(values[name] ?? ""));
}

function isDirty() {
  return textArea.value !== serverText;
}

function showSaveState(text, failed = false) {
  saveState.textContent = text;
  saveState.classList.toggle("failed", failed);
}

async function callApi(url, method, body) {
  const response = await fetch(url, {
    method,
    credentials: "same-origin",
    headers: {
      "Content-Type": "application/json",
      Accept: "application/json",
      "X-CSRFToken": csrfToken,
    },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const data = await response.json().catch(() => ({}));
  return { ok: response.ok, status: response.status, data };
}

function errorText(data) {
  if (data && typeof data.detail === "string") return data.detail;
  return strings.request_failed;
}

function scheduleSave() {
  if (!mayWrite || status === "signed") return;
  showSaveState(strings.unsaved);
  clearTimeout(saveTimer);
  saveTimer = setTimeout(save, SAVE_DELAY_MS);
}

async function save() {
  if (saving) {
    scheduleSave();
    return;
  }
  if (!isDirty()) {
    showSaveState(strings.saved);
    return;
  }
  saving = true;
  showSaveState(strings.saving);
  const text = textArea.value;
  inFlightText = text;
  try {
    const result = await callApi(apiUrl, "PUT", { text, version: serverVersion });
    if (result.ok) {
      applyServerState(result.data, { fromOwnSave: true });
    } else if (result.status === 409 && result.data.status && result.data.status !== "signed") {
      // Text arrived elsewhere (dictation) since our last save: merge it into
      // what was typed here, then save again from the new version.
      applyServerState(result.data, { fromOwnSave: false });
    } else {
      showSaveState(format(strings.save_failed, { error: errorText(result.data) }), true);
      if (result.status === 409) await refresh();
    }
  } catch (error) {
    showSaveState(format(strings.save_failed, { error: strings.request_failed }), true);
  } finally {
    saving = false;
    inFlightText = null;
  }
  if (isDirty() && status !== "signed") scheduleSave();
  else if (!saveState.classList.contains("failed")) showSaveState(strings.saved);
}

async function refresh() {
  const result = await callApi(apiUrl, "GET");
  if (result.ok) applyServerState(result.data, { fromOwnSave: false });
}

// Replace the text, keeping the caret where it was when the change is an
// append (dictation) and clamping it otherwise.
function setTextKeepingCaret(newText) {
  const focused = document.activeElement === textArea;
  const start = textArea.selectionStart;
  const end = textArea.selectionEnd;
  textArea.value = newText;
  if (focused) {
    textArea.setSelectionRange(Math.min(start, newText.length), Math.min(end, newText.length));
  }
}

function applyServerState(state, { fromOwnSave }) {
  if (state.version < serverVersion) return;
  // Our own save echoed by the socket needs no merge; anything else does.
  const ours = state.text === inFlightText || state.text === textArea.value;
  if (!fromOwnSave && !ours && state.text !== serverText) {
    mergeRemoteText(state.text);
  }
  serverText = state.text;
  serverVersion = state.version;
  status = state.status;
  if (status === "signed" && textArea.value !== serverText) setTextKeepingCaret(serverText);
  renderStatus(state);
  renderDelivery(state.delivery);
}

function mergeRemoteText(remoteText) {
  if (!isDirty()) {
    setTextKeepingCaret(remoteText);
    return;
  }
  // Unsaved local typing plus text dictated elsewhere: keep both, then save.
  if (remoteText.startsWith(serverText)) {
    const dictated = remoteText.slice(serverText.length);
    setTextKeepingCaret(textArea.value + dictated);
  }
  scheduleSave();
}

function renderStatus(state) {
  statusBadge.textContent = strings[`status_${state.status}`] || state.status;
  statusBadge.className = `status status-${state.status}`;
  statusBadge.dataset.status = state.status;
  const signed = state.status === "signed";
  textArea.readOnly = signed || !mayWrite;
  if (signButton) signButton.hidden = signed;
  if (signForm && signed) signForm.hidden = true;
  signedLine.textContent = signed
    ? format(strings.signed_by, {
        user: state.signed_by,
        date: state.signed_at ? new Date(state.signed_at).toLocaleString() : "",
      })
    : "";
}

function renderDelivery(delivery) {
  const state = delivery ? delivery.state : "none";
  const template = strings[`delivery_${state}`] || state;
  deliveryState.textContent = format(template, {
    attempts: delivery ? delivery.attempts : 0,
    error: delivery ? delivery.last_error : "",
  });
  deliveryState.className = `delivery-state delivery-${state}`;
  deliveryState.dataset.state = state;
}

async function sign(event) {
  event.preventDefault();
  signError.textContent = "";
  const otp = signOtp.value.trim();
  if (!otp) {
    signError.textContent = strings.otp_required;
    return;
  }
  clearTimeout(saveTimer);
  if (isDirty()) await save();
  try {
    const result = await callApi(`${apiUrl}/sign`, "POST", { otp });
    signOtp.value = "";
    if (result.ok) {
      applyServerState(result.data, { fromOwnSave: true });
    } else {
      signError.textContent = format(strings.sign_failed, { error: errorText(result.data) });
    }
  } catch (error) {
    signError.textContent = format(strings.sign_failed, { error: strings.request_failed });
  }
}

function connect() {
  const scheme = window.location.protocol === "https:" ? "wss" : "ws";
  const socket = new WebSocket(`${scheme}://${window.location.host}${root.dataset.wsPath}`);
  socket.addEventListener("message", (event) => {
    const message = JSON.parse(event.data);
    if (message.type === "report") applyServerState(message, { fromOwnSave: false });
  });
  socket.addEventListener("open", () => {
    root.classList.remove("offline");
  });
  socket.addEventListener("close", (event) => {
    if (event.code === 4404 || event.code === 4403) return;
    root.classList.add("offline");
    showSaveState(strings.offline, true);
    setTimeout(connect, RECONNECT_MS);
  });
}

textArea.addEventListener("input", scheduleSave);
if (signButton) {
  signButton.addEventListener("click", () => {
    signForm.hidden = false;
    signOtp.focus();
  });
  signCancel.addEventListener("click", () => {
    signForm.hidden = true;
    signError.textContent = "";
  });
  signForm.addEventListener("submit", sign);
}
window.addEventListener("beforeunload", (event) => {
  if (isDirty() && status !== "signed") event.preventDefault();
});
connect();
