// Nimbus diagnostic viewer: the page's entry point.
//
// Frames are rendered on the server; the modules under viewer/ keep them in
// memory only (see viewer/frames.js). Nothing is written to localStorage,
// sessionStorage, IndexedDB or Cache Storage, and there is no service
// worker: no patient data stays on the reading PC after the page is gone.
// The page passes its settings in the JSON script tag #viewer-config, with
// no inline script, so a strict Content-Security-Policy can forbid them.

import { config, format, labels } from "./viewer/config.js";
import { Hub } from "./viewer/hub.js";
import { attachPointer } from "./viewer/pointer.js";

const PAGE_STEP = 10;
const root = document.getElementById("viewer");
const hub = new Hub(root);
const toolbar = root.querySelector(".viewer-toolbar");
const voiSelect = document.getElementById("voi-select");
const cineButton = document.getElementById("cine-toggle");
const keyList = document.getElementById("key-image-list");

function pressed(selector, on) {
  for (const button of toolbar.querySelectorAll(selector)) {
    button.setAttribute("aria-pressed", String(on(button)));
  }
}

// --- Toolbar state follows the active viewport ---------------------------

function presetButtons() {
  return [...toolbar.querySelectorAll("[data-preset][data-modality]")];
}

function visiblePresets() {
  return presetButtons().filter((button) => !button.hidden);
}

function refreshToolbar(viewport) {
  pressed("[data-tool]", (b) => b.dataset.tool === hub.tool);
  pressed("[data-layout]", (b) => b.dataset.layout === hub.layout);
  pressed("#link-toggle", () => hub.linked);
  pressed("#touch-wl", () => hub.touchWl);
  pressed("[data-action=flip-h]", () => viewport.view.flipH);
  pressed("[data-action=flip-v]", () => viewport.view.flipV);
  pressed("#tool-invert", () => viewport.invert);
  pressed("#key-toggle", () => hub.store.isKey(viewport.image));
  for (const button of presetButtons()) {
    button.hidden = button.dataset.modality !== viewport.modality;
  }
  refreshVoiMenu(viewport);
  refreshCine(viewport);
}

// The file's own windows and VOI LUTs. A modality without presets of the
// tenant (MR, CR, DX, MG as seeded: their values have no fixed scale) has
// them as its presets, even when there is one; otherwise the menu shows
// when there is a choice to make.
function fileChoices(viewport) {
  return (viewport.facts && viewport.facts.voi_choices) || [];
}

function refreshVoiMenu(viewport) {
  const choices = fileChoices(viewport);
  const asPresets = visiblePresets().length === 0;
  voiSelect.closest("label").hidden = choices.length < (asPresets ? 1 : 2);
  const wanted = choices.map((choice) => String(choice.index)).join(",");
  if (voiSelect.dataset.choices !== wanted) {
    voiSelect.replaceChildren(...choices.map((choice) => {
      const option = document.createElement("option");
      option.value = choice.index;
      const template = choice.kind === "lut" ? labels.voiLut : labels.voiChoice;
      option.textContent = format(template, {
        n: choice.index + 1,
        explanation: choice.explanation
          || (choice.center !== null ? `${choice.center}/${choice.width}` : ""),
      });
      return option;
    }));
    voiSelect.dataset.choices = wanted;
  }
  voiSelect.value = String(viewport.window ? "" : viewport.voi);
}

function refreshCine(viewport) {
  const image = viewport.image;
  const fps = viewport.facts && viewport.facts.cine_fps;
  cineButton.disabled = !(image && image.number_of_frames > 1);
  cineButton.setAttribute("aria-pressed", String(viewport.playing));
  cineButton.textContent = viewport.playing ? labels.pause : labels.play;
  cineButton.dataset.fps = fps || "";
}

function renderKeyImages(keyImages) {
  if (!keyImages.length) {
    const none = document.createElement("li");
    none.className = "key-image-none";
    none.textContent = labels.noKeyImages;
    keyList.replaceChildren(none);
    return;
  }
  keyList.replaceChildren(...keyImages.map((key) => {
    const item = document.createElement("li");
    const button = document.createElement("button");
    button.type = "button";
    button.className = "key-image-link";
    button.dataset.seriesUid = key.series_instance_uid;
    button.dataset.sopUid = key.sop_instance_uid;
    button.dataset.frame = key.frame;
    button.textContent = format(labels.keyImageEntry, {
      series: key.series_number ?? "–",
      image: key.instance_number ?? "–",
      frame: key.frame,
    });
    item.append(button);
    return item;
  }));
}

// --- Actions -----------------------------------------------------------------

function applyPreset(button) {
  const viewport = hub.active;
  if (button.dataset.preset === "auto") viewport.setVoi(0);
  else viewport.setWindow(Number(button.dataset.wc), Number(button.dataset.ww));
}

function toggleCine() {
  const viewport = hub.active;
  if (viewport.playing) viewport.stopCine();
  else viewport.playCine(Number(cineButton.dataset.fps) || 10);
  refreshCine(viewport);
}

// A series in a window of its own (a second monitor), kept in step by
// BroadcastChannel; "noopener" so neither page can script the other.
function openWindow() {
  const viewport = hub.active;
  if (!viewport.seriesUid) return;
  const url = new URL(config.viewerUrl.replace(config.studySlot, viewport.studyUid),
    window.location.href);
  url.searchParams.set("series", viewport.seriesUid);
  url.searchParams.set("layout", "1x1");
  window.open(url, `nimbus-series-${viewport.seriesUid}`, "noopener");
}

const ACTIONS = {
  rotate: () => hub.active.rotate(),
  "flip-h": () => hub.active.flip("h"),
  "flip-v": () => hub.active.flip("v"),
  invert: () => hub.active.setInvert(!hub.active.invert),
  reset: () => hub.active.reset(),
  cine: toggleCine,
  link: () => hub.setLinked(!hub.linked),
  key: () => hub.toggleKey().then((list) => list && renderKeyImages(list)),
  "open-window": openWindow,
  "open-report": () => window.open(config.reportUrl, "nimbus-report", "noopener"),
  "touch-wl": () => {
    hub.touchWl = !hub.touchWl;
  },
};

// --- Keyboard ------------------------------------------------------------------

const KEY_TOOLS = { w: "wl", s: "scroll", z: "zoom", p: "pan", l: "length",
  a: "angle", e: "ellipse", d: "probe" };
const KEY_ACTIONS = { r: "rotate", h: "flip-h", v: "flip-v", i: "invert", x: "reset",
  c: "cine", y: "link", k: "key" };
const KEY_MOVES = {
  ArrowDown: (v) => v.current + 1,
  ArrowRight: (v) => v.current + 1,
  ArrowUp: (v) => v.current - 1,
  ArrowLeft: (v) => v.current - 1,
  PageDown: (v) => v.current + PAGE_STEP,
  PageUp: (v) => v.current - PAGE_STEP,
  Home: () => 0,
  End: (v) => v.images.length - 1,
};

// A shortcut works only when its button is on the page: the simplified mode
// (a referrer's) leaves out the measuring tools and the key-image mark.
function offered(selector) {
  return toolbar.querySelector(selector) !== null;
}

function onKeyDown(event) {
  const target = event.target;
  if (target.closest && target.closest("input, textarea, select, [contenteditable]")) return;
  if (event.altKey || event.ctrlKey || event.metaKey) return;
  const viewport = hub.active;
  const key = event.key.length === 1 ? event.key.toLowerCase() : event.key;
  if (KEY_MOVES[key] && viewport.hasImages) {
    event.preventDefault();
    viewport.show(KEY_MOVES[key](viewport), { source: "user" });
  } else if (KEY_TOOLS[key] && offered(`[data-tool="${KEY_TOOLS[key]}"]`)) {
    hub.setTool(KEY_TOOLS[key]);
  } else if (KEY_ACTIONS[key] && offered(`[data-action="${KEY_ACTIONS[key]}"]`)) {
    ACTIONS[KEY_ACTIONS[key]]();
  } else if (key === "Escape") {
    hub.cancelDraft();
  } else if (key === "0") {
    viewport.setVoi(0);
  } else if (/^[1-9]$/.test(key)) {
    const presets = visiblePresets();
    const index = Number(key) - 1;
    if (presets[index]) applyPreset(presets[index]);
    else if (!presets.length && index < fileChoices(viewport).length) viewport.setVoi(index);
  } else {
    return;
  }
  refreshToolbar(viewport);
}

// --- Start ---------------------------------------------------------------------

// Thumbnails wait for the first image: on a slow line they would share its
// bandwidth and the browser's six connections.
function loadThumbnails() {
  for (const img of root.querySelectorAll(".series-thumb img[data-src]")) {
    img.src = img.dataset.src;
    img.removeAttribute("data-src");
  }
}

function bind() {
  for (const viewport of hub.viewports) attachPointer(viewport, hub);
  hub.onChange(refreshToolbar);

  toolbar.addEventListener("click", (event) => {
    const button = event.target.closest("button");
    if (!button) return;
    if (button.dataset.tool) hub.setTool(button.dataset.tool);
    else if (button.dataset.preset) applyPreset(button);
    else if (button.dataset.layout) hub.setLayout(button.dataset.layout);
    else if (ACTIONS[button.dataset.action]) ACTIONS[button.dataset.action]();
    refreshToolbar(hub.active);
  });
  voiSelect.addEventListener("change", () => hub.active.setVoi(Number(voiSelect.value)));
  for (const thumb of root.querySelectorAll(".series-thumb")) {
    thumb.addEventListener("click", () => {
      hub.openInActive(thumb.dataset.studyUid, thumb.dataset.seriesUid);
    });
  }
  keyList.addEventListener("click", (event) => {
    const link = event.target.closest(".key-image-link");
    if (link) hub.showKeyImage(link.dataset.seriesUid, link.dataset.sopUid, Number(link.dataset.frame));
  });
  document.addEventListener("keydown", onKeyDown);
  window.addEventListener("pagehide", () => {
    for (const viewport of hub.viewports) viewport.frames.clear();
  });
}

// The hanging protocol's layout, unless the page was opened for one series
// (a second window) or the screen is a phone's.
function opening() {
  const params = new URLSearchParams(window.location.search);
  const series = params.get("series");
  if (series) {
    return { layout: params.get("layout") || "1x1", viewports: [{ study: config.studyUid, series }] };
  }
  if (window.matchMedia("(max-width: 800px)").matches) {
    return { layout: "1x1", viewports: config.viewports.slice(0, 1) };
  }
  return { layout: config.layout, viewports: config.viewports, linked: config.linked };
}

// A key image cited in a report opens here with ?series&sop&frame and,
// when the report saved one, the window it was read at (?wc&ww).
async function showReference(viewport) {
  const params = new URLSearchParams(window.location.search);
  const sop = params.get("sop");
  if (!params.get("series") || !sop) return;
  await viewport.ready;
  const index = viewport.indexOf(sop, Number(params.get("frame") || 1));
  if (index >= 0) await viewport.show(index);
  const wc = Number.parseFloat(params.get("wc"));
  const ww = Number.parseFloat(params.get("ww"));
  if (Number.isFinite(wc) && Number.isFinite(ww) && ww > 0) viewport.setWindow(wc, ww);
}

async function start() {
  bind();
  hub.setTool("wl");
  hub.viewports[0].el.classList.add("active");
  hub.store.loadKeyImages().then(renderKeyImages).catch(() => {});
  const plan = opening();
  if (!plan.viewports.length) {
    hub.viewports[0].showMessage(labels.empty);
    loadThumbnails();
    return;
  }
  hub.setLayout(plan.layout, plan.viewports);
  hub.viewports[0].ready.finally(loadThumbnails);
  await showReference(hub.viewports[0]);
  if (plan.linked) {
    await Promise.all(hub.visible().map((v) => v.ready));
    hub.setLinked(true);
  }
  refreshToolbar(hub.active);
}

start();
