// Referrer portal: live notices of new reports and critical findings.
//
// The socket says only what happened and to which study; the badge shows
// the unread count the server sends, and a notice links to the study page,
// which reads everything else over HTTP through the portal's access checks.
// Settings come from the JSON script tag #portal-config (no inline script).

const config = JSON.parse(document.getElementById("portal-config").textContent);
const badge = document.getElementById("unread-badge");
const region = document.getElementById("live-notices");
const RECONNECT_MS = 5000;
// Close codes after which trying again cannot help: not a referrer, or
// signed out (everywhere).
const FINAL_CODES = new Set([4401, 4403, 4404]);

function showUnread(count) {
  badge.textContent = String(count);
  badge.dataset.count = String(count);
  badge.hidden = count < 1;
}

function showNotice(message) {
  const text = config.labels[message.kind];
  if (!text) return; // an acknowledgement: the badge is enough
  const item = document.createElement("p");
  item.className = `live-notice notice-${message.kind}`;
  const link = document.createElement("a");
  link.href = config.studyUrl.replace(config.studySlot,
    encodeURIComponent(message.study_instance_uid));
  link.textContent = config.labels.open;
  item.append(`${text} `, link);
  region.prepend(item);
}

function connect() {
  const scheme = window.location.protocol === "https:" ? "wss" : "ws";
  const socket = new WebSocket(`${scheme}://${window.location.host}${config.socketPath}`);
  socket.addEventListener("message", (event) => {
    const message = JSON.parse(event.data);
    if (typeof message.unread === "number") showUnread(message.unread);
    if (message.type === "notice") showNotice(message);
  });
  socket.addEventListener("close", (event) => {
    if (!FINAL_CODES.has(event.code)) setTimeout(connect, RECONNECT_MS);
  });
}

connect();
