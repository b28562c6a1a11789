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
  if (!mayWrite || status === "signed" || !holdsLock()) return;
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
  renderWorkflow(state);
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
  textArea.readOnly = signed || !mayWrite || !holdsLock();
  if (signButton) signButton.hidden = signed;
  if (signForm && signed) signForm.hidden = true;
  signedLine.textContent = signed
    ? format(strings.signed_by, {
        user: state.signed_by,
        date: state.signed_at ? new Date(state.signed_at).toLocaleString(document.documentElement.lang) : "",
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
      // Signing frees the lock; taking it again lets this editor add addenda.
      await acquireLock();
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
    else if (message.type === "command") runCommand(message.command);
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

// --- Lock, workflow, templates, key images -----------------------------------
// Only the holder of the report's lock edits; the others watch read-only and
// see who holds it. The lock expires unless renewed, so it is renewed here.

const me = root.dataset.username || "";
const lockSeconds = Number(root.dataset.lockSeconds || 120);
const lockState = document.getElementById("lock-state");
const takeLock = document.getElementById("take-lock");
const pickLists = JSON.parse(document.getElementById("report-pick-lists").textContent);
const pickChoice = document.getElementById("pick-choice");
const addendumText = document.getElementById("addendum-text");
const addendumForm = document.getElementById("addendum-sign-form");
let lockHolder = "";
let lockReadAt = 0;
let lockTimer = null;
let addendumTimer = null;
// The window each series was last read at in a viewer window of this browser.
const lastWindows = new Map();

function holdsLock() {
  return lockHolder !== "" && lockHolder === me;
}

const LOCK_RETRY_MS = 2000;

async function acquireLock() {
  let result;
  try {
    result = await callApi(`${apiUrl}/lock`, "POST");
  } catch (error) {
    result = { ok: false, status: 0, data: {} };
  }
  if (result.ok) {
    lockHolder = result.data.lock.holder;
    applyServerState(result.data, { fromOwnSave: false });
  } else if (result.status === 409) {
    await refresh();
  } else if ((result.status === 0 || result.status >= 500) && !holdsLock()) {
    // A request lost on its way or a server error (a web process
    // restarting): try again rather than stay read-only until reloaded.
    setTimeout(acquireLock, LOCK_RETRY_MS);
  }
}

function releaseLock() {
  if (!holdsLock()) return;
  fetch(`${apiUrl}/lock`, {
    method: "DELETE",
    credentials: "same-origin",
    keepalive: true,
    headers: { "X-CSRFToken": csrfToken },
  });
}

function renderLock(lock) {
  lockHolder = lock.holder;
  if (!lockState) return;
  if (holdsLock()) lockState.textContent = strings.lock_mine;
  else if (lock.holder) lockState.textContent = format(strings.lock_other, { user: lock.holder });
  else lockState.textContent = strings.lock_free;
  lockState.dataset.holder = lock.holder;
  takeLock.hidden = holdsLock() || lock.holder !== "";
  root.classList.toggle("watching", !holdsLock());
  const editable = holdsLock() && status !== "signed";
  textArea.readOnly = !editable;
  for (const id of ["insert-template", "insert-macro", "next-field", "preliminary-button", "sign-button"]) {
    const element = document.getElementById(id);
    if (element) element.disabled = !editable;
  }
  if (addendumText) addendumText.readOnly = !(holdsLock() && status === "signed");
}

function renderWorkflow(state) {
  // Lock news is ordered by when the server read it: a socket's first state
  // can arrive after the answer to our own, newer, lock request.
  if (state.lock && !(state.lock.as_of < lockReadAt)) {
    lockReadAt = state.lock.as_of;
    renderLock(state.lock);
  }
  // A preliminary report edited since issued can be issued again: until
  // then referrers see it as issued.
  const preliminary = document.getElementById("preliminary-button");
  if (preliminary) {
    preliminary.hidden = state.status !== "draft" && !state.unissued_changes;
    preliminary.textContent = state.unissued_changes ? strings.issue_changes : strings.issue_preliminary;
  }
  const unissued = document.getElementById("unissued-note");
  if (unissued) unissued.hidden = !state.unissued_changes;
  const critical = document.getElementById("critical-button");
  if (critical) critical.hidden = state.critical.flagged || state.status === "draft";
  renderCritical(state.critical);
  renderAddenda(state);
  renderReferences(state.image_references || []);
}

function renderCritical(critical) {
  const box = document.getElementById("critical-box");
  const line = document.getElementById("critical-state");
  if (!box || !critical) return;
  box.hidden = !critical.flagged;
  const parts = [format(strings.critical_flagged, { user: critical.flagged_by })];
  parts.push(
    critical.notified.length
      ? format(strings.critical_notified, { users: critical.notified.join(", ") })
      : strings.critical_nobody,
  );
  parts.push(
    critical.acknowledged_at
      ? format(strings.critical_acknowledged, {
          user: critical.acknowledged_by,
          date: new Date(critical.acknowledged_at).toLocaleString(document.documentElement.lang),
        })
      : strings.critical_waiting,
  );
  line.textContent = parts.join(" · ");
}

function renderAddenda(state) {
  const section = document.getElementById("addenda-section");
  const list = document.getElementById("addenda");
  if (!section || !state.addenda) return;
  section.hidden = state.status !== "signed" && !state.addenda.length;
  list.replaceChildren(
    ...state.addenda
      .filter((addendum) => addendum.status === "signed")
      .map((addendum) => {
        const article = document.createElement("article");
        article.className = "addendum";
        const heading = document.createElement("h3");
        heading.textContent = `${format(strings.addendum_heading, { number: addendum.number })} (${format(
          strings.addendum_signed,
          { user: addendum.signed_by, date: new Date(addendum.signed_at).toLocaleString(document.documentElement.lang) },
        )})`;
        const body = document.createElement("p");
        body.textContent = addendum.text;
        article.append(heading, body);
        return article;
      }),
  );
  const draft = state.addenda.find((addendum) => addendum.status === "draft");
  if (addendumText && document.activeElement !== addendumText) {
    addendumText.value = draft ? draft.text : "";
  }
}

function renderReferences(references) {
  const list = document.getElementById("image-references");
  if (!list) return;
  list.replaceChildren(
    ...references.map((reference) => {
      const item = document.createElement("li");
      const link = document.createElement("a");
      link.href = reference.viewer_url;
      link.target = "nimbus-viewer";
      link.dataset.number = reference.number;
      link.textContent = format(strings.image_label, reference);
      item.append(link);
      return item;
    }),
  );
}

// Text goes where the caret is, replacing any selection, then is saved.
function insertAtCaret(text) {
  if (textArea.readOnly) return;
  const start = textArea.selectionStart;
  const end = textArea.selectionEnd;
  textArea.setRangeText(text, start, end, "end");
  textArea.focus();
  scheduleSave();
}

// Fields are [[name]] placeholders; "next field" selects the next one after
// the caret (wrapping round), and offers the pick-list of that name.
function nextField() {
  const text = textArea.value;
  const pattern = /\[\[([^\]]*)\]\]/g;
  pattern.lastIndex = textArea.selectionEnd;
  let match = pattern.exec(text);
  if (!match) {
    pattern.lastIndex = 0;
    match = pattern.exec(text);
  }
  if (!match) return;
  textArea.focus();
  textArea.setSelectionRange(match.index, match.index + match[0].length);
  offerPickList(match[1].trim());
}

function offerPickList(name) {
  if (!pickChoice) return;
  const choices = pickLists[name];
  pickChoice.hidden = !choices;
  if (!choices) return;
  pickChoice.replaceChildren(
    new Option("—", ""),
    ...choices.map((choice) => new Option(choice, choice)),
  );
  pickChoice.focus();
}

function runCommand(command) {
  if (command === "next_field") nextField();
}

async function loadTemplates() {
  const select = document.getElementById("template-choice");
  if (!select) return;
  const result = await callApi(`${apiUrl}/templates`, "GET");
  if (!result.ok) return;
  for (const template of result.data) {
    const label = template.language ? `${template.name} (${template.language.toUpperCase()})` : template.name;
    const option = new Option(label, String(template.id));
    if (template.language) option.lang = template.language;
    option.dataset.text = template.text;
    select.append(option);
  }
}

async function insertMacro() {
  const input = document.getElementById("macro-name");
  const name = input.value.trim();
  if (!name) return;
  const result = await callApi(`/api/report-macros/${encodeURIComponent(name)}`, "GET");
  if (result.ok) {
    insertAtCaret(result.data.text);
    input.value = "";
  } else {
    showSaveState(format(strings.macro_unknown, { name }), true);
  }
}

async function loadKeyImages() {
  const list = document.getElementById("key-images");
  const result = await callApi(root.dataset.keyImagesUrl, "GET");
  const images = result.ok ? result.data.key_images : [];
  if (!images.length) {
    const empty = document.createElement("li");
    empty.textContent = strings.no_key_images;
    list.replaceChildren(empty);
    return;
  }
  list.replaceChildren(
    ...images.map((image) => {
      const item = document.createElement("li");
      const button = document.createElement("button");
      button.type = "button";
      button.className = "insert-key-image";
      button.textContent = `${image.series_number ?? ""} / ${image.instance_number ?? ""} · ${image.frame}`;
      button.addEventListener("click", () => citeKeyImage(image));
      item.append(button);
      return item;
    }),
  );
}

async function citeKeyImage(image) {
  const window_ = lastWindows.get(image.series_instance_uid);
  const result = await callApi(`${apiUrl}/images`, "POST", {
    series_instance_uid: image.series_instance_uid,
    sop_instance_uid: image.sop_instance_uid,
    frame: image.frame,
    window_center: window_ ? window_.wc : null,
    window_width: window_ ? window_.ww : null,
  });
  if (!result.ok) {
    showSaveState(format(strings.save_failed, { error: errorText(result.data) }), true);
    return;
  }
  const references = result.data.image_references;
  const reference = references[references.length - 1];
  renderReferences(references);
  insertAtCaret(`[${format(strings.image_reference, reference)}]`);
}

function saveAddendum() {
  clearTimeout(addendumTimer);
  addendumTimer = setTimeout(async () => {
    const result = await callApi(`${apiUrl}/addendum`, "PUT", { text: addendumText.value });
    if (result.ok) showSaveState(strings.saved);
    else showSaveState(format(strings.save_failed, { error: errorText(result.data) }), true);
  }, SAVE_DELAY_MS);
}

async function signAddendum(event) {
  event.preventDefault();
  const otpInput = document.getElementById("addendum-otp");
  clearTimeout(addendumTimer);
  const saved = await callApi(`${apiUrl}/addendum`, "PUT", { text: addendumText.value });
  if (!saved.ok) {
    signError.textContent = format(strings.sign_failed, { error: errorText(saved.data) });
    return;
  }
  const result = await callApi(`${apiUrl}/addendum/sign`, "POST", { otp: otpInput.value.trim() });
  otpInput.value = "";
  if (result.ok) {
    addendumText.value = "";
    signError.textContent = "";
    applyServerState(result.data, { fromOwnSave: true });
    await acquireLock();
  } else {
    signError.textContent = format(strings.sign_failed, { error: errorText(result.data) });
  }
}

async function postAction(path) {
  if (isDirty()) await save();
  const result = await callApi(`${apiUrl}${path}`, "POST");
  if (result.ok) applyServerState(result.data, { fromOwnSave: true });
  else signError.textContent = errorText(result.data);
}

function on(id, event, handler) {
  const element = document.getElementById(id);
  if (element) element.addEventListener(event, handler);
}

function startWorkflow() {
  if (!mayWrite) return;
  // Read-only until the server says this editor holds the lock.
  textArea.readOnly = true;
  on("take-lock", "click", acquireLock);
  on("next-field", "click", nextField);
  on("insert-macro", "click", insertMacro);
  on("preliminary-button", "click", () => postAction("/preliminary"));
  on("critical-button", "click", () => postAction("/critical"));
  on("insert-template", "click", () => {
    const option = document.getElementById("template-choice").selectedOptions[0];
    if (option && option.dataset.text) {
      insertAtCaret(option.dataset.text);
      textArea.setSelectionRange(0, 0);
      nextField();
    }
  });
  on("key-images-panel", "toggle", (event) => {
    if (event.target.open) loadKeyImages();
  });
  if (pickChoice) {
    pickChoice.addEventListener("change", () => {
      if (pickChoice.value) insertAtCaret(pickChoice.value);
      pickChoice.hidden = true;
    });
  }
  if (addendumText) addendumText.addEventListener("input", saveAddendum);
  if (addendumForm) addendumForm.addEventListener("submit", signAddendum);
  textArea.addEventListener("keydown", (event) => {
    // Tab moves to the next field, as in dictation systems; Shift+Tab leaves.
    if (event.key === "Tab" && !event.shiftKey && /\[\[/.test(textArea.value)) {
      event.preventDefault();
      nextField();
    }
  });
  if ("BroadcastChannel" in window) {
    const channel = new BroadcastChannel("nimbus-viewer");
    channel.onmessage = (event) => {
      if (event.data.type === "window" && event.data.window) {
        lastWindows.set(event.data.series, event.data.window);
      }
    };
  }
  loadTemplates();
  acquireLock();
  lockTimer = setInterval(() => {
    if (holdsLock()) acquireLock();
  }, (lockSeconds * 1000) / 4);
  window.addEventListener("pagehide", () => {
    clearInterval(lockTimer);
    releaseLock();
  });
}

startWorkflow();
