// Nimbus MPR and 3D: three linked planes with a crosshair, slabs, and a 3D view.
//
// Every image is rendered on the server. Images are fetched with
// cache: 'no-store' and shown from in-memory blob URLs that are revoked when
// replaced, so nothing lands in the browser's caches. The page passes its
// settings in the JSON script tag #mpr-config (no inline script, for CSP).

const PLANES = ["axial", "sagittal", "coronal"];
const DEGREES_PER_PX = 0.5;

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
};

const views = {};  // name -> {section, stage, image, grid, loader}

function format(template, values) {
  return template.replace(/%\((\w+)\)s/g, (_, name) => String(values[name] ?? ""));
}

// --- Vector helpers -------------------------------------------------------

const sub = (a, b) => a.map((x, i) => x - b[i]);
const add = (a, b) => a.map((x, i) => x + b[i]);
const scale = (a, s) => a.map((x) => x * s);
const dot = (a, b) => a.reduce((sum, x, i) => sum + x * b[i], 0);
const cross = (a, b) => [
  a[1] * b[2] - a[2] * b[1],
  a[2] * b[0] - a[0] * b[2],
  a[0] * b[1] - a[1] * b[0],
];

function normalOf(grid) {
  return cross(grid.column_direction, grid.row_direction);
}

// A grid's pixels may be rectangular: pixel_spacing is [between rows, between columns].
const rowSpacing = (grid) => grid.pixel_spacing[0];
const columnSpacing = (grid) => grid.pixel_spacing[1];

// The image's size in mm: its pixels' centres plus half a pixel all round.
function footprint(grid) {
  return { width: grid.columns * columnSpacing(grid), height: grid.rows * rowSpacing(grid) };
}

// Pixel (row, column) of a patient point on a plane's grid.
function pixelOf(grid, point) {
  const offset = sub(point, grid.origin);
  return {
    row: dot(offset, grid.row_direction) / rowSpacing(grid),
    column: dot(offset, grid.column_direction) / columnSpacing(grid),
  };
}

// Patient point of a pixel on the plane through ``through`` (the crosshair).
function pointAt(grid, row, column, through = state.point) {
  const normal = normalOf(grid);
  const depth = dot(sub(through, grid.origin), normal);
  const inPlane = add(
    scale(grid.column_direction, column * columnSpacing(grid)),
    scale(grid.row_direction, row * rowSpacing(grid)),
  );
  return add(add(grid.origin, scale(normal, depth)), inPlane);
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
        image.src = blobUrl;
        if (shownUrl) URL.revokeObjectURL(shownUrl);
        shownUrl = blobUrl;
        onShown?.(response, extra);
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
  const [x, y, z] = state.point;
  const params = new URLSearchParams({ x: x.toFixed(2), y: y.toFixed(2), z: z.toFixed(2) });
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

// The longest side the view shows, in device pixels (at most 2 per CSS px),
// rounded up to a size step so that a small resize asks for the same images.
function viewSize(view) {
  const box = view.stage.getBoundingClientRect();
  const wanted = Math.max(box.width, box.height) * Math.min(window.devicePixelRatio || 1, 2);
  return config.sizeSteps.find((step) => step >= wanted) ?? config.sizeSteps.at(-1);
}

function drawCrosshair(name) {
  const view = views[name];
  const grid = view.grid;
  const { row, column } = pixelOf(grid, state.point);
  const { width, height } = footprint(grid);
  const svg = view.stage.querySelector("svg");
  // Drawn in mm on the image's footprint: the stage has its aspect ratio.
  svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
  svg.setAttribute("preserveAspectRatio", "none");
  const [horizontal, vertical] = svg.querySelectorAll("line.h, line.v");
  const y = (row + 0.5) * rowSpacing(grid);
  const x = (column + 0.5) * columnSpacing(grid);
  setLine(horizontal, 0, y, width, y);
  setLine(vertical, x, 0, x, height);
  const depth = dot(state.point, normalOf(grid));
  view.section.querySelector(".mpr-position").textContent = format(labels.position, {
    mm: depth.toFixed(1),
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
}

function refresh3d(quality) {
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

function bindPlane(name) {
  const view = views[name];
  const moveTo = (event) => {
    const { row, column } = pixelFromEvent(view, event);
    state.point = pointAt(view.grid, row, column);
    // The plane under the pointer does not change; the other two do.
    refreshPlanes(PLANES.filter((other) => other !== name));
  };
  view.section.addEventListener("pointerdown", (event) => {
    view.section.setPointerCapture(event.pointerId);
    moveTo(event);
  });
  view.section.addEventListener("pointermove", (event) => {
    if (event.buttons & 1) moveTo(event);
  });
  view.section.addEventListener("wheel", (event) => {
    event.preventDefault();
    const normal = normalOf(view.grid);
    const direction = event.deltaY > 0 ? -1 : 1;
    state.point = add(state.point, scale(normal, direction * stepAlong(normal)));
    refreshPlanes([name]);
  }, { passive: false });
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

function bindToolbar() {
  const mode = document.getElementById("slab-mode");
  const thickness = document.getElementById("slab-thickness");
  mode.addEventListener("change", () => {
    state.slabMode = mode.value;
    refreshPlanes();
  });
  thickness.addEventListener("change", () => {
    const value = Number(thickness.value);
    state.thickness = Number.isFinite(value) && value >= 0 ? Math.min(value, 1000) : 0;
    if (state.slabMode) refreshPlanes();
  });
  for (const button of document.querySelectorAll(".preset")) {
    button.addEventListener("click", () => {
      state.window = { wc: Number(button.dataset.wc), ww: Number(button.dataset.ww) };
      refreshPlanes();
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
  for (const name of PLANES) {
    views[name].grid = geometry.planes[name];
    views[name].load = makeLoader(views[name].image);
    bindPlane(name);
  }
  bind3d();
  bindToolbar();
  layout();
  window.addEventListener("resize", () => {
    layout();
    refreshPlanes();
  });
  refreshPlanes();
  refresh3d("full");
}

start();
