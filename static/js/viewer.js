// Nimbus diagnostic viewer: stack scrolling, window/level, presets, series.
//
// Frames are rendered on the server (lossless PNG). They are fetched with
// cache: 'no-store' and kept only as in-memory blob URLs, so no image lands
// in the browser's disk cache; every blob URL dropped is revoked.
// The page passes its settings in the JSON script tag #viewer-config: no
// inline script, so a strict Content-Security-Policy can forbid them.

const PREFETCH_RADIUS = 5;   // neighbours fetched ahead on each side
const KEEP_RADIUS = 10;      // blob URLs further than this are dropped
const WL_THROTTLE_MS = 120;  // at most one window request per interval while dragging
const LOADING_DELAY_MS = 150;
const SCROLL_DRAG_PX = 8;    // drag distance per image when scrolling by drag
const WHEEL_STEP_PX = 50;    // touchpad scroll distance per image
const PAGE_STEP = 10;

const config = JSON.parse(document.getElementById("viewer-config").textContent);
const labels = config.labels;

const els = {
  viewport: document.getElementById("viewport"),
  image: document.getElementById("viewer-image"),
  loading: document.getElementById("viewer-loading"),
  message: document.getElementById("viewer-message"),
  series: document.getElementById("overlay-series"),
  instance: document.getElementById("overlay-instance"),
  frame: document.getElementById("overlay-frame"),
  position: document.getElementById("overlay-position"),
  location: document.getElementById("overlay-location"),
  wl: document.getElementById("overlay-wl"),
  invert: document.getElementById("tool-invert"),
};

const state = {
  seriesUid: null,
  images: [],
  index: 0,
  window: null,        // {wc, ww} chosen by the user; null: each file's default
  shownWindow: null,   // the window of the image on screen, from the server
  seriesDefault: null, // the series' default window, for W/L on a fresh series
  invert: false,
  tool: "wl",
  generation: 0,
  displayedUrl: null,
};

// url -> {promise, blobUrl, dropped}
const frames = new Map();

function format(template, values) {
  return template.replace(/%\((\w+)\)s/g, (_, name) => String(values[name] ?? ""));
}

function clampIndex(index) {
  return Math.min(Math.max(index, 0), Math.max(state.images.length - 1, 0));
}

function roundWindow(wc, ww) {
  return { wc: Math.round(wc), ww: Math.max(1, Math.round(ww)) };
}

function frameUrl(image) {
  if (!state.window) return image.url;
  const query = new URLSearchParams({ wc: state.window.wc, ww: state.window.ww });
  return `${image.url}?${query}`;
}

// --- Fetching and the in-memory frame store ---------------------------------

function loadFrame(url) {
  const known = frames.get(url);
  if (known) return known.promise;

  const entry = { blobUrl: null, dropped: false, promise: null };
  entry.promise = fetch(url, { cache: "no-store", credentials: "same-origin" })
    .then(async (response) => {
      if (!response.ok) throw new Error(`HTTP ${response.status}`);
      const blob = await response.blob();
      const blobUrl = URL.createObjectURL(blob);
      if (entry.dropped) URL.revokeObjectURL(blobUrl);
      else entry.blobUrl = blobUrl;
      return {
        blobUrl,
        wc: response.headers.get("X-Window-Center"),
        ww: response.headers.get("X-Window-Width"),
        error: response.headers.get("X-Render-Error") === "1",
      };
    });
  entry.promise.catch(() => {
    if (frames.get(url) === entry) frames.delete(url);
  });
  frames.set(url, entry);
  return entry.promise;
}

function dropFrame(url) {
  const entry = frames.get(url);
  if (!entry) return;
  entry.dropped = true;
  if (entry.blobUrl) URL.revokeObjectURL(entry.blobUrl);
  frames.delete(url);
}

function evictFrames() {
  const keep = new Set([state.displayedUrl]);
  for (let d = -KEEP_RADIUS; d <= KEEP_RADIUS; d += 1) {
    const image = state.images[state.index + d];
    if (image) keep.add(frameUrl(image));
  }
  for (const url of [...frames.keys()]) {
    if (!keep.has(url)) dropFrame(url);
  }
}

function prefetchNeighbours() {
  for (let d = 1; d <= PREFETCH_RADIUS; d += 1) {
    for (const index of [state.index + d, state.index - d]) {
      const image = state.images[index];
      if (image) loadFrame(frameUrl(image)).catch(() => {});
    }
  }
}

// --- Display -------------------------------------------------------------------

function setLoading(on) {
  els.loading.hidden = !on;
}

function showMessage(text) {
  els.message.textContent = text;
  els.message.hidden = !text;
}

async function show(index, { prefetch = true } = {}) {
  if (!state.images.length) return;
  state.index = clampIndex(index);
  const generation = ++state.generation;
  const url = frameUrl(state.images[state.index]);
  updateImageOverlay();

  const timer = setTimeout(() => setLoading(true), LOADING_DELAY_MS);
  try {
    const frame = await loadFrame(url);
    if (generation !== state.generation) return;
    els.image.src = frame.blobUrl;
    state.displayedUrl = url;
    state.shownWindow = frame.wc !== null && frame.ww !== null
      ? { wc: Number(frame.wc), ww: Number(frame.ww) }
      : null;
    showMessage("");
    updateWindowOverlay();
  } catch {
    if (generation === state.generation) showMessage(labels.failed);
  } finally {
    clearTimeout(timer);
    if (generation === state.generation) setLoading(false);
  }

  if (generation !== state.generation) return;
  if (prefetch) prefetchNeighbours();
  evictFrames();
}

function updateImageOverlay() {
  const image = state.images[state.index];
  els.position.textContent = format(labels.position, {
    n: state.index + 1,
    total: state.images.length,
  });
  els.instance.textContent = image.instance_number === null
    ? ""
    : format(labels.instance, { number: image.instance_number });
  els.frame.textContent = image.number_of_frames > 1
    ? format(labels.frame, { n: image.frame, total: image.number_of_frames })
    : "";
  els.location.textContent = image.slice_position === null
    ? ""
    : format(labels.location, { mm: image.slice_position.toFixed(1) });
}

function currentWindow() {
  return state.window || state.shownWindow;
}

function updateWindowOverlay() {
  const shown = currentWindow();
  els.wl.textContent = shown
    ? format(labels.window, { ww: Math.round(shown.ww), wc: Math.round(shown.wc) })
    : "";
}

function updateSeriesOverlay(series) {
  const number = series.series_number === null ? "" : series.series_number;
  els.series.textContent = format(labels.series, {
    number,
    description: series.series_description,
  });
}

// --- Series ---------------------------------------------------------------------

async function openSeries(seriesUid) {
  const url = config.seriesUrl.replace(config.uidSlot, encodeURIComponent(seriesUid));
  for (const thumb of document.querySelectorAll(".series-thumb")) {
    const active = thumb.dataset.seriesUid === seriesUid;
    thumb.classList.toggle("active", active);
    thumb.setAttribute("aria-pressed", String(active));
  }
  setLoading(true);
  state.generation += 1;

  let series;
  try {
    const response = await fetch(url, { cache: "no-store", credentials: "same-origin" });
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    series = await response.json();
  } catch {
    setLoading(false);
    showMessage(labels.failed);
    return;
  }

  state.seriesUid = seriesUid;
  state.images = series.images;
  state.window = null;
  state.shownWindow = null;
  state.seriesDefault = series.default_window
    ? { wc: series.default_window.center, ww: series.default_window.width }
    : null;
  state.displayedUrl = null;
  evictFrames();
  updateSeriesOverlay(series);
  setLoading(false);

  if (!state.images.length) {
    els.image.removeAttribute("src");
    showMessage(labels.empty);
    return;
  }
  await show(0);
}

// --- Window / level -------------------------------------------------------------

let wlTimer = null;
let wlLastRequest = 0;

function requestWindowedFrame() {
  const wait = WL_THROTTLE_MS - (performance.now() - wlLastRequest);
  clearTimeout(wlTimer);
  const fire = () => {
    wlLastRequest = performance.now();
    show(state.index, { prefetch: false });
  };
  if (wait <= 0) fire();
  else wlTimer = setTimeout(fire, wait);
}

function setWindow(wc, ww, { throttled = false } = {}) {
  state.window = roundWindow(wc, ww);
  updateWindowOverlay();
  if (throttled) requestWindowedFrame();
  else show(state.index);
}

function applyPreset(button) {
  setWindow(Number(button.dataset.wc), Number(button.dataset.ww));
}

function reset() {
  state.window = null;
  setInvert(false);
  show(state.index);
}

function setInvert(on) {
  state.invert = on;
  els.image.classList.toggle("inverted", on);
  els.invert.setAttribute("aria-pressed", String(on));
}

function setTool(tool) {
  state.tool = tool;
  for (const button of document.querySelectorAll("[data-tool]")) {
    button.setAttribute("aria-pressed", String(button.dataset.tool === tool));
  }
  els.viewport.dataset.tool = tool;
}

// --- Input ------------------------------------------------------------------------

let drag = null;

function onPointerDown(event) {
  const wantsWl = event.button === 2 || (event.button === 0 && state.tool === "wl");
  const mode = wantsWl ? "wl" : event.button === 0 ? "scroll" : null;
  if (!mode || !state.images.length) return;
  const start = currentWindow() || state.seriesDefault;
  if (mode === "wl" && !start) return; // a colour image has no window
  event.preventDefault();
  els.viewport.focus({ preventScroll: true });
  els.viewport.setPointerCapture(event.pointerId);
  drag = {
    mode,
    x: event.clientX,
    y: event.clientY,
    travelled: 0,
    start,
    // Wide windows (CT, 16-bit MR) need bigger steps than 8-bit ones.
    sensitivity: start ? Math.max(0.5, start.ww / 300) : 1,
  };
}

function onPointerMove(event) {
  if (!drag) return;
  const dx = event.clientX - drag.x;
  const dy = event.clientY - drag.y;
  if (drag.mode === "wl") {
    setWindow(
      drag.start.wc + dy * drag.sensitivity,
      drag.start.ww + dx * drag.sensitivity,
      { throttled: true },
    );
    return;
  }
  const steps = Math.trunc((dy - drag.travelled) / SCROLL_DRAG_PX);
  if (steps) {
    drag.travelled += steps * SCROLL_DRAG_PX;
    show(state.index + steps);
  }
}

function onPointerUp(event) {
  if (!drag) return;
  const finished = drag;
  drag = null;
  if (els.viewport.hasPointerCapture(event.pointerId)) {
    els.viewport.releasePointerCapture(event.pointerId);
  }
  if (finished.mode === "wl" && state.window) {
    clearTimeout(wlTimer);
    show(state.index);
  }
}

let wheelTravel = 0;

// One image per mouse-wheel notch; a touchpad's small deltas add up first.
function onWheel(event) {
  if (!state.images.length) return;
  event.preventDefault();
  const pixels = event.deltaMode === WheelEvent.DOM_DELTA_PIXEL;
  if (!pixels || Math.abs(event.deltaY) >= WHEEL_STEP_PX) {
    wheelTravel = 0;
    show(state.index + Math.sign(event.deltaY));
    return;
  }
  wheelTravel += event.deltaY;
  if (Math.abs(wheelTravel) < WHEEL_STEP_PX) return;
  show(state.index + Math.sign(wheelTravel));
  wheelTravel = 0;
}

const KEY_MOVES = {
  ArrowDown: (i) => i + 1,
  ArrowRight: (i) => i + 1,
  ArrowUp: (i) => i - 1,
  ArrowLeft: (i) => i - 1,
  PageDown: (i) => i + PAGE_STEP,
  PageUp: (i) => i - PAGE_STEP,
  Home: () => 0,
  End: () => state.images.length - 1,
};

function onKeyDown(event) {
  const target = event.target;
  if (target.closest && target.closest("input, textarea, select, [contenteditable]")) return;
  if (event.altKey || event.ctrlKey || event.metaKey) return;
  const move = KEY_MOVES[event.key];
  if (!move || !state.images.length) return;
  event.preventDefault();
  show(move(state.index));
}

function bind() {
  const { viewport } = els;
  viewport.addEventListener("pointerdown", onPointerDown);
  viewport.addEventListener("pointermove", onPointerMove);
  viewport.addEventListener("pointerup", onPointerUp);
  viewport.addEventListener("pointercancel", onPointerUp);
  viewport.addEventListener("contextmenu", (event) => event.preventDefault());
  viewport.addEventListener("wheel", onWheel, { passive: false });
  document.addEventListener("keydown", onKeyDown);

  for (const thumb of document.querySelectorAll(".series-thumb")) {
    thumb.addEventListener("click", () => openSeries(thumb.dataset.seriesUid));
  }
  for (const button of document.querySelectorAll("[data-preset]")) {
    button.addEventListener("click", () => applyPreset(button));
  }
  for (const button of document.querySelectorAll("[data-tool]")) {
    button.addEventListener("click", () => setTool(button.dataset.tool));
  }
  els.invert.addEventListener("click", () => setInvert(!state.invert));
  document.getElementById("tool-reset").addEventListener("click", reset);
  window.addEventListener("pagehide", () => {
    for (const url of [...frames.keys()]) dropFrame(url);
  });
}

bind();
setTool(state.tool);
if (config.firstSeries) openSeries(config.firstSeries);
else showMessage(labels.empty);
