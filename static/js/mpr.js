// Nimbus MPR and 3D: three linked planes with a crosshair, an oblique plane,
// slabs, and a 3D view.
//
// Every image is rendered on the server. Images are fetched with
// cache: 'no-store' and shown from in-memory blob URLs that are revoked when
// replaced, so nothing lands in the browser's caches. The page passes its
// settings in the JSON script tag #mpr-config (no inline script, for CSP).
//
// The oblique plane is a standard plane turned about the normal of a
// reference view: on that view a line through the crosshair shows where the
// oblique plane cuts it, and dragging the line's handle (or the tilt field,
// or the arrow keys on the focused handle) turns it. The handle marks the
// oblique image's right-hand side. Wheel or arrow keys on the oblique view
// move through parallel oblique planes.

import {
  add,
  cross,
  dot,
  footprint,
  footprintOf,
  normalOf,
  parseGridHeader,
  pixelOf,
  pointAt,
  rotate,
  scale,
} from "./mpr-geometry.js";

const PLANES = ["axial", "sagittal", "coronal"];
const DEGREES_PER_PX = 0.5;
// The standard plane an oblique starts from, per reference view: the one
// that cuts the reference view along a horizontal line.
const OBLIQUE_BASE = { axial: "coronal", coronal: "axial", sagittal: "axial" };
// Page Up/Down and Shift+arrows move this many steps at once.
const BIG_STEP = 10;

const config = JSON.parse(document.getElementById("mpr-config").textContent);
const labels = config.labels;

const state = {
  geometry: null,
  point: null,                // crosshair, patient coordinates (mm)
  window: null,               // {wc, ww}; null: the series' default
  slabMode: "",
  thickness: 10,
  azimuth: 0,
  elevation: 0,
  renderMode: "mip",
  preset: "bone",
  oblique: {
    on: false,
    reference: "axial",
    angle: 0,                 // degrees, clockwise on the reference view
    centre: null,             // a point of the oblique plane (mm)
  },
};

const views = {};  // name -> {section, stage, image, grid, load}

function format(template, values) {
  return template.replace(/%\((\w+)\)s/g, (_, name) => String(values[name] ?? ""));
}

// One voxel step along a plane's normal: the spacing of the nearest volume axis.
function stepAlong(normal) {
  const g = state.geometry;
  const axes = [
    [g.slice_direction, g.spacing.slice],
    [g.column_direction, g.spacing.row],
    [g.row_direction, g.spacing.column],
  ];
  axes.sort((a, b) => Math.abs(dot(b[0], normal)) - Math.abs(dot(a[0], normal)));
  return axes[0][1];
}

// --- The oblique plane --------------------------------------------------------

// Screen right (u) and down (v) of the oblique plane: its base plane turned
// about the reference view's normal.
function obliqueDirections() {
  const { reference, angle } = state.oblique;
  const base = state.geometry.planes[OBLIQUE_BASE[reference]];
  const axis = normalOf(state.geometry.planes[reference]);
  return {
    u: rotate(base.column_direction, axis, angle),
    v: rotate(base.row_direction, axis, angle),
  };
}

function obliqueNormal() {
  const { u, v } = obliqueDirections();
  return cross(u, v);
}

function setObliqueAngle(degrees) {
  // (-180, 180]: the handle stays at the end the user holds.
  let angle = ((Math.round(degrees) % 360) + 360) % 360;
  if (angle > 180) angle -= 360;
  state.oblique.angle = angle;
  document.getElementById("oblique-angle").value = String(angle);
  refreshOblique();
  drawObliqueLine();
}

// The oblique plane's trace on its reference view, with the turning handle.
function drawObliqueLine() {
  for (const name of PLANES) {
    const view = views[name];
    const shown = state.oblique.on && name === state.oblique.reference;
    const line = view.stage.querySelector("line.oblique");
    const handle = view.stage.querySelector("circle.oblique-handle");
    view.section.classList.toggle("oblique-reference", shown);
    if (!shown) continue;
    const { width, height } = footprint(view.grid);
    const centre = footprintOf(view.grid, state.oblique.centre);
    const angle = (state.oblique.angle * Math.PI) / 180;
    const dx = Math.cos(angle);
    const dy = Math.sin(angle);
    const reach = Math.hypot(width, height);
    setLine(line, centre.x - dx * reach, centre.y - dy * reach, centre.x + dx * reach, centre.y + dy * reach);
    const radius = 0.3 * Math.min(width, height);
    handle.setAttribute("cx", centre.x + dx * radius);
    handle.setAttribute("cy", centre.y + dy * radius);
    handle.setAttribute("r", 0.025 * Math.max(width, height));
    handle.setAttribute("aria-valuenow", String(state.oblique.angle));
    handle.setAttribute("aria-valuetext", format(labels.tilt, { degrees: state.oblique.angle }));
  }
}

// --- Fetching images --------------------------------------------------------

// Keeps one request in flight per view; the latest wanted URL wins.
function makeLoader(image, onShown) {
  let running = false;
  let wanted = null;
  let shownUrl = null;

  async function run() {
    running = true;
    while (wanted) {
      const { url, extra } = wanted;
      wanted = null;
      try {
        const response = await fetch(url, { cache: "no-store", credentials: "same-origin" });
        if (!response.ok) throw new Error(String(response.status));
        const blobUrl = URL.createObjectURL(await response.blob());
        onShown?.(response, extra);
        image.src = blobUrl;
        image.dataset.source = url;
        if (shownUrl) URL.revokeObjectURL(shownUrl);
        shownUrl = blobUrl;
      } catch (error) {
        showMessage(labels.failed);
      }
    }
    running = false;
  }

  return (url, extra) => {
    wanted = { url, extra };
    if (!running) run();
  };
}

function windowParams(params) {
  if (state.window) {
    params.set("wc", String(state.window.wc));
    params.set("ww", String(state.window.ww));
  }
  return params;
}

function planeUrl(name) {
  const oblique = name === "oblique";
  const [x, y, z] = oblique ? state.oblique.centre : state.point;
  const params = new URLSearchParams({ x: x.toFixed(2), y: y.toFixed(2), z: z.toFixed(2) });
  if (oblique) {
    const { u, v } = obliqueDirections();
    params.set("u", u.map((c) => c.toFixed(6)).join(","));
    params.set("v", v.map((c) => c.toFixed(6)).join(","));
  }
  params.set("size", String(viewSize(views[name])));
  if (state.slabMode && state.thickness > 0) {
    params.set("mode", state.slabMode);
    params.set("thickness", String(state.thickness));
  }
  return `${config.planeUrl.replace("__plane__", name)}?${windowParams(params)}`;
}

function renderUrl(quality) {
  const params = new URLSearchParams({
    azimuth: state.azimuth.toFixed(1),
    elevation: state.elevation.toFixed(1),
    mode: state.renderMode,
    preset: state.preset,
    quality,
  });
  return `${config.renderUrl}?${windowParams(params)}`;
}

// --- Drawing ----------------------------------------------------------------

// Size the stage to the image's footprint in mm, as large as the view allows.
function fitStage(view, width, height) {
  const box = view.section.getBoundingClientRect();
  const fit = Math.min(box.width / width, box.height / height);
  Object.assign(view.stage.style, {
    width: `${width * fit}px`,
    height: `${height * fit}px`,
    left: `${(box.width - width * fit) / 2}px`,
    top: `${(box.height - height * fit) / 2}px`,
  });
}

// The longest side the view can show, in device pixels (at most 2 per CSS
// px), rounded up to a size step so that a small resize asks for the same
// images.
function viewSize(view) {
  const box = view.section.getBoundingClientRect();
  const wanted = Math.max(box.width, box.height) * Math.min(window.devicePixelRatio || 1, 2);
  return config.sizeSteps.find((step) => step >= wanted) ?? config.sizeSteps.at(-1);
}

function drawCrosshair(name) {
  const view = views[name];
  const grid = view.grid;
  if (!grid) return;
  const { width, height } = footprint(grid);
  const { x, y } = footprintOf(grid, state.point);
  const svg = view.stage.querySelector("svg");
  // Drawn in mm on the image's footprint: the stage has its aspect ratio.
  svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
  svg.setAttribute("preserveAspectRatio", "none");
  setLine(svg.querySelector("line.h"), 0, y, width, y);
  setLine(svg.querySelector("line.v"), x, 0, x, height);
  const through = name === "oblique" ? state.oblique.centre : state.point;
  view.section.querySelector(".mpr-position").textContent = format(labels.position, {
    mm: dot(through, normalOf(grid)).toFixed(1),
  });
}

function setLine(line, x1, y1, x2, y2) {
  line.setAttribute("x1", x1);
  line.setAttribute("y1", y1);
  line.setAttribute("x2", x2);
  line.setAttribute("y2", y2);
}

function refreshPlanes(names = PLANES) {
  for (const name of names) views[name].load(planeUrl(name));
  PLANES.forEach(drawCrosshair);
  drawCrosshair("oblique");
  drawObliqueLine();
}

function refreshOblique() {
  if (!state.oblique.on) return;
  views.oblique.load(planeUrl("oblique"));
  document.getElementById("oblique-tilt").textContent = format(labels.tilt, {
    degrees: state.oblique.angle,
  });
}

// The crosshair moved: the oblique plane goes through it again.
function moveCrosshair(point, names) {
  state.point = point;
  state.oblique.centre = point.slice();
  refreshPlanes(names);
  refreshOblique();
}

function refresh3d(quality) {
  if (state.oblique.on) return;
  views["3d"].load(renderUrl(quality), quality);
  document.getElementById("angles").textContent = format(labels.angles, {
    azimuth: Math.round(state.azimuth),
    elevation: Math.round(state.elevation),
  });
}

function showMessage(text) {
  const message = document.getElementById("mpr-message");
  message.textContent = text;
  message.hidden = !text;
}

// --- Interaction --------------------------------------------------------------

function pixelFromEvent(view, event) {
  const rect = view.stage.getBoundingClientRect();
  return {
    row: ((event.clientY - rect.top) / rect.height) * view.grid.rows - 0.5,
    column: ((event.clientX - rect.left) / rect.width) * view.grid.columns - 0.5,
  };
}

// Wheel and keys: step through parallel planes of one view.
function bindScrolling(section, scroll) {
  section.addEventListener("wheel", (event) => {
    event.preventDefault();
    scroll(event.deltaY > 0 ? -1 : 1);
  }, { passive: false });
  section.addEventListener("keydown", (event) => {
    const steps = {
      ArrowUp: 1, ArrowDown: -1, PageUp: BIG_STEP, PageDown: -BIG_STEP,
    }[event.key];
    if (!steps || event.target.classList.contains("oblique-handle")) return;
    event.preventDefault();
    scroll(steps);
  });
}

function bindPlane(name) {
  const view = views[name];
  const moveTo = (event) => {
    const { row, column } = pixelFromEvent(view, event);
    // The plane under the pointer does not change; the other two do.
    moveCrosshair(
      pointAt(view.grid, row, column, state.point),
      PLANES.filter((other) => other !== name),
    );
  };
  view.section.addEventListener("pointerdown", (event) => {
    if (event.target.classList.contains("oblique-handle")) return;
    view.section.setPointerCapture(event.pointerId);
    moveTo(event);
  });
  view.section.addEventListener("pointermove", (event) => {
    if (event.buttons & 1 && view.section.hasPointerCapture(event.pointerId)) moveTo(event);
  });
  bindScrolling(view.section, (steps) => {
    const normal = normalOf(view.grid);
    moveCrosshair(add(state.point, scale(normal, steps * stepAlong(normal))), [name]);
  });
  bindObliqueHandle(view);
}

// Dragging the handle turns the oblique plane about the reference view's normal.
function bindObliqueHandle(view) {
  const handle = view.stage.querySelector("circle.oblique-handle");
  const turnTo = (event) => {
    const rect = view.stage.getBoundingClientRect();
    const { width } = footprint(view.grid);
    const mmPerPx = width / rect.width;  // the stage keeps the footprint's aspect
    const centre = footprintOf(view.grid, state.oblique.centre);
    const x = (event.clientX - rect.left) * mmPerPx - centre.x;
    const y = (event.clientY - rect.top) * mmPerPx - centre.y;
    if (Math.hypot(x, y) > 0) setObliqueAngle((Math.atan2(y, x) * 180) / Math.PI);
  };
  handle.addEventListener("pointerdown", (event) => {
    event.stopPropagation();
    handle.setPointerCapture(event.pointerId);
    handle.focus();
  });
  handle.addEventListener("pointermove", (event) => {
    if (handle.hasPointerCapture(event.pointerId)) turnTo(event);
  });
  handle.addEventListener("keydown", (event) => {
    const turn = { ArrowRight: 1, ArrowDown: 1, ArrowLeft: -1, ArrowUp: -1 }[event.key];
    if (!turn) return;
    event.preventDefault();
    setObliqueAngle(state.oblique.angle + turn * (event.shiftKey ? BIG_STEP : 1));
  });
}

function bindOblique() {
  const view = views.oblique;
  view.load = makeLoader(view.image, (response) => {
    // The oblique grid changes with the tilt: take it from the answer.
    view.grid = parseGridHeader(response.headers.get("X-Plane-Grid"));
    if (!view.grid) return;
    const { width, height } = footprint(view.grid);
    fitStage(view, width, height);
    drawCrosshair("oblique");
  });
  view.section.addEventListener("pointerdown", (event) => {
    if (!view.grid) return;
    view.section.setPointerCapture(event.pointerId);
    const { row, column } = pixelFromEvent(view, event);
    // A point of the oblique plane: the plane itself stays where it is.
    moveCrosshair(pointAt(view.grid, row, column, state.oblique.centre), PLANES);
  });
  bindScrolling(view.section, (steps) => {
    const normal = obliqueNormal();
    state.oblique.centre = add(state.oblique.centre, scale(normal, steps * stepAlong(normal)));
    refreshOblique();
    drawObliqueLine();
  });

  const toggle = document.getElementById("oblique-toggle");
  const controls = document.getElementById("oblique-controls");
  toggle.addEventListener("click", () => {
    state.oblique.on = !state.oblique.on;
    toggle.setAttribute("aria-pressed", String(state.oblique.on));
    controls.hidden = !state.oblique.on;
    view.section.hidden = !state.oblique.on;
    views["3d"].section.hidden = state.oblique.on;
    drawObliqueLine();
    if (state.oblique.on) refreshOblique();
    else refresh3d("full");
  });
  const reference = document.getElementById("oblique-reference");
  reference.addEventListener("change", () => {
    state.oblique.reference = reference.value;
    setObliqueAngle(0);
  });
  const angle = document.getElementById("oblique-angle");
  angle.addEventListener("change", () => {
    const value = Number(angle.value);
    setObliqueAngle(Number.isFinite(value) ? value : 0);
  });
}

function bind3d() {
  const section = views["3d"].section;
  let last = null;
  section.addEventListener("pointerdown", (event) => {
    section.setPointerCapture(event.pointerId);
    section.classList.add("dragging");
    last = { x: event.clientX, y: event.clientY };
  });
  section.addEventListener("pointermove", (event) => {
    if (!last) return;
    state.azimuth = (state.azimuth + (event.clientX - last.x) * DEGREES_PER_PX) % 360;
    state.elevation = Math.max(-90, Math.min(90, state.elevation + (event.clientY - last.y) * DEGREES_PER_PX));
    last = { x: event.clientX, y: event.clientY };
    refresh3d("coarse");
  });
  const stop = () => {
    if (!last) return;
    last = null;
    section.classList.remove("dragging");
    refresh3d("full");
  };
  section.addEventListener("pointerup", stop);
  section.addEventListener("pointercancel", stop);
}

function refreshAll() {
  refreshPlanes();
  refreshOblique();
}

function bindToolbar() {
  const mode = document.getElementById("slab-mode");
  const thickness = document.getElementById("slab-thickness");
  mode.addEventListener("change", () => {
    state.slabMode = mode.value;
    refreshAll();
  });
  thickness.addEventListener("change", () => {
    const value = Number(thickness.value);
    state.thickness = Number.isFinite(value) && value >= 0 ? Math.min(value, 1000) : 0;
    if (state.slabMode) refreshAll();
  });
  for (const button of document.querySelectorAll(".preset")) {
    button.addEventListener("click", () => {
      state.window = { wc: Number(button.dataset.wc), ww: Number(button.dataset.ww) };
      refreshAll();
      if (state.renderMode === "mip") refresh3d("full");
    });
  }
  const modes = document.querySelectorAll(".render-mode");
  for (const button of modes) {
    button.addEventListener("click", () => {
      state.renderMode = button.dataset.mode;
      state.preset = button.dataset.preset || state.preset;
      modes.forEach((b) => b.setAttribute("aria-pressed", String(b === button)));
      refresh3d("full");
    });
  }
}

function layout() {
  for (const name of PLANES) {
    const { width, height } = footprint(views[name].grid);
    fitStage(views[name], width, height);
  }
  if (views.oblique.grid) {
    const { width, height } = footprint(views.oblique.grid);
    fitStage(views.oblique, width, height);
  }
  fitStage(views["3d"], 1, 1);
}

async function start() {
  for (const section of document.querySelectorAll(".mpr-view")) {
    const name = section.dataset.plane || "3d";
    const image = section.querySelector("img");
    views[name] = { section, stage: section.querySelector(".mpr-stage"), image };
  }
  views["3d"].load = makeLoader(views["3d"].image, (response, quality) => {
    document.getElementById("preview-marker").hidden = quality !== "coarse";
  });
  document.getElementById("preview-marker").textContent = labels.coarse;

  showMessage(labels.loading);
  const response = await fetch(config.volumeUrl, { cache: "no-store", credentials: "same-origin" });
  const geometry = await response.json();
  if (!geometry.available) {
    showMessage(geometry.message);
    document.getElementById("mpr-grid").hidden = true;
    return;
  }
  showMessage("");
  state.geometry = geometry;
  state.point = geometry.center.slice();
  state.oblique.centre = geometry.center.slice();
  for (const name of PLANES) {
    views[name].grid = geometry.planes[name];
    views[name].load = makeLoader(views[name].image);
    bindPlane(name);
  }
  bindOblique();
  bind3d();
  bindToolbar();
  layout();
  window.addEventListener("resize", () => {
    layout();
    refreshAll();
  });
  refreshPlanes();
  refresh3d("full");
}

start();
