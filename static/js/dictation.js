// Speech dictation in the report editor: the microphone's audio streams to
// the server's speech engine over /ws/studies/<uid>/dictation/. Partial text
// shows greyed while the radiologist talks; the final text reaches the report
// through the server, so every open editor (this one included) shows it.
// The record button, the push-to-talk key (F4) or a foot pedal that presents
// as that key toggle recording. Strings come translated from data attributes.

const box = document.getElementById("dictation");

function main(root) {
  const button = document.getElementById("dictation-button");
  const state = document.getElementById("dictation-state");
  const partial = document.getElementById("dictation-partial");
  const keys = (root.dataset.pushToTalkKeys || "F4").split(/\s+/);
  const labels = root.dataset;

  let socket = null;
  let audio = null; // { context, stream, node }
  let recording = false;
  let starting = false;

  // Greyed, until the final text replaces it (set here: no inline styles).
  partial.style.opacity = "0.6";
  partial.style.fontStyle = "italic";

  function show(text) {
    state.textContent = text;
  }

  function openSocket() {
    if (socket && socket.readyState <= WebSocket.OPEN) return socket;
    const scheme = window.location.protocol === "https:" ? "wss" : "ws";
    socket = new WebSocket(`${scheme}://${window.location.host}${root.dataset.wsPath}`);
    socket.binaryType = "arraybuffer";
    socket.addEventListener("message", (event) => handle(JSON.parse(event.data)));
    socket.addEventListener("close", () => {
      if (recording) {
        show(labels.labelConnectionLost);
        stopAudio();
        setRecording(false);
      }
    });
    return socket;
  }

  function handle(message) {
    if (message.type === "partial") {
      partial.textContent = message.text;
    } else if (message.type === "final") {
      // The report socket brings the text into the editor; the preview goes.
      partial.textContent = "";
      root.dispatchEvent(new CustomEvent("dictation-final", { detail: message }));
      if (!recording) show("");
    } else if (message.type === "error") {
      partial.textContent = "";
      show(message.message);
    }
  }

  function setRecording(on) {
    recording = on;
    button.setAttribute("aria-pressed", on ? "true" : "false");
    button.textContent = on ? labels.labelStop : labels.labelStart;
    root.classList.toggle("recording", on);
  }

  async function start() {
    if (recording || starting) return;
    starting = true;
    try {
      const ws = openSocket();
      const stream = await navigator.mediaDevices.getUserMedia({
        audio: {
          channelCount: 1,
          echoCancellation: false,
          noiseSuppression: false,
          autoGainControl: true,
        },
      });
      const context = new AudioContext();
      await context.audioWorklet.addModule(root.dataset.workletUrl);
      const source = context.createMediaStreamSource(stream);
      const node = new AudioWorkletNode(context, "pcm-downsampler");
      node.port.onmessage = (event) => {
        if (recording && ws.readyState === WebSocket.OPEN) ws.send(event.data);
      };
      // A node only runs while the graph pulls it: route it to a silent output.
      const mute = context.createGain();
      mute.gain.value = 0;
      source.connect(node).connect(mute).connect(context.destination);
      audio = { context, stream, node };
      setRecording(true);
      show(labels.labelListening);
    } catch (error) {
      show(labels.labelNoMicrophone);
      stopAudio();
    } finally {
      starting = false;
    }
  }

  function stopAudio() {
    if (!audio) return;
    audio.node.port.onmessage = null;
    audio.stream.getTracks().forEach((track) => track.stop());
    audio.context.close();
    audio = null;
  }

  function stop() {
    if (!recording) return;
    setRecording(false);
    stopAudio();
    if (socket && socket.readyState === WebSocket.OPEN) {
      socket.send(JSON.stringify({ type: "stop" }));
    }
    show(labels.labelRecognising);
  }

  function toggle() {
    if (recording) stop();
    else start();
  }

  button.addEventListener("click", toggle);
  document.addEventListener("keydown", (event) => {
    if (!keys.includes(event.key) || event.repeat) return;
    event.preventDefault();
    toggle();
  });
  window.addEventListener("pagehide", () => {
    stopAudio();
    if (socket) socket.close();
  });
}

if (box) main(box);
