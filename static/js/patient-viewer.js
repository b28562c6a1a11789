// The patient's simple image viewer: one series at a time, scroll through
// its frames (wheel, arrow keys or the slider) and pick a window preset.
// Frames are rendered on the server; the page only swaps image URLs.

const config = JSON.parse(document.getElementById("patient-viewer-config").textContent);
const root = document.querySelector("[data-patient-viewer]");
const image = root.querySelector("[data-image]");
const stage = root.querySelector(".pv-stage");
const slider = root.querySelector("[data-slider]");
const position = root.querySelector("[data-position]");
const seriesSelect = root.querySelector("[data-series]");
const presetButtons = [...root.querySelectorAll("[data-preset]")];

let frames = [];
let index = 0;
let preset = config.presets[0];

function format(template, values) {
  return template.replace(/%\((\w+)\)s/g, (_, key) => String(values[key]));
}

function frameUrl() {
  const url = new URL(frames[index], window.location.origin);
  if (preset.center !== null && preset.width !== null) {
    url.searchParams.set("wc", preset.center);
    url.searchParams.set("ww", preset.width);
  }
  return url.pathname + url.search;
}

function show() {
  if (!frames.length) {
    image.removeAttribute("src");
    position.textContent = "";
    return;
  }
  image.src = frameUrl();
  slider.value = String(index + 1);
  position.textContent = format(config.labels.position, { n: index + 1, total: frames.length });
}

function go(step) {
  if (!frames.length) return;
  index = Math.min(frames.length - 1, Math.max(0, index + step));
  show();
}

async function openSeries(uid) {
  position.textContent = config.labels.loading;
  const response = await fetch(config.seriesUrl.replace(config.slot, uid), {
    headers: { Accept: "application/json" },
    credentials: "same-origin",
  });
  if (!response.ok) {
    position.textContent = config.labels.failed;
    return;
  }
  frames = (await response.json()).images;
  index = Math.floor(frames.length / 2);
  slider.max = String(Math.max(frames.length, 1));
  show();
}

function choosePreset(number) {
  preset = config.presets[number];
  presetButtons.forEach((button, i) => button.setAttribute("aria-pressed", String(i === number)));
  show();
}

stage.addEventListener("wheel", (event) => {
  event.preventDefault();
  go(event.deltaY > 0 ? 1 : -1);
}, { passive: false });
stage.addEventListener("keydown", (event) => {
  const steps = { ArrowDown: 1, ArrowRight: 1, PageDown: 10, ArrowUp: -1, ArrowLeft: -1, PageUp: -10 };
  if (event.key in steps) {
    event.preventDefault();
    go(steps[event.key]);
  }
});
slider.addEventListener("input", () => {
  index = Number(slider.value) - 1;
  show();
});
image.addEventListener("error", () => {
  position.textContent = config.labels.failed;
});
seriesSelect.addEventListener("change", () => openSeries(seriesSelect.value));
presetButtons.forEach((button, number) => button.addEventListener("click", () => choosePreset(number)));

choosePreset(0);
if (seriesSelect.value) openSeries(seriesSelect.value);
