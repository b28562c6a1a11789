// One viewport: a series' images, its window and view, and its overlays.
//
// The image and the marks sit in one "stage", sized in image pixels and
// placed by one matrix (geometry.js), so zoom, pan, rotation and flips move
// both together and a pointer maps back to the same image pixel.

import {
  config,
  format,
  getJson,
  labels,
  number,
  seriesImages,
  seriesUrl,
} from "./config.js";
import {
  FrameLoader,
  LatestOnly,
  attachLossyMarker,
  attachProgress,
  requestWarmUp,
} from "../frame-loader.js";
import { fitScale, freshView, viewMatrix, zoomAbout } from "./geometry.js";
import { OVERVIEW_SIDE, TileLayer } from "./tiles.js";

const KEEP_RADIUS = 10;
const WL_THROTTLE_MS = 120;
const LOADING_DELAY_MS = 150;
const MAX_PIXEL_RATIO = 2;

export class Viewport {
  constructor(element, hub) {
    this.el = element;
    this.hub = hub;
    this.slot = Number(element.dataset.slot);
    this.stage = element.querySelector(".vp-stage");
    this.img = element.querySelector(".vp-image");
    this.marks = element.querySelector(".vp-marks");
    this.labelLayer = element.querySelector(".vp-labels");
    this.loading = element.querySelector(".vp-loading");
    this.message = element.querySelector(".vp-message");
    this.overlay = {};
    for (const name of ["series", "instance", "frame", "fps", "key", "position",
      "location", "zoom", "wl", "study", "description"]) {
      this.overlay[name] = element.querySelector(`.ov-${name}`);
    }
    // Prefetches the whole series, nearest first, six at a time (frame-loader.js).
    this.frames = new FrameLoader();
    attachProgress(this.frames, element, labels.seriesProgress);
    this.lossyMarker = attachLossyMarker(element, labels.lossyPreview);
    this.previews = new LatestOnly((frame) => this.showPreview(frame));
    // Large radiographs: the whole frame at most OVERVIEW_SIDE pixels a
    // side, and tiles of what is visible beyond that zoom (tiles.js).
    this.tiles = new TileLayer(this.stage);
    this.studyUid = null;
    this.seriesUid = null;
    this.modality = "";
    this.images = [];
    this.current = 0;
    this.window = null;       // {wc, ww} the reader chose; null: the file's
    this.voi = 0;             // which of the file's windows, without a chosen one
    this.shownWindow = null;  // the window of the frame on screen
    this.seriesDefault = null;
    this.invert = false;
    this.view = freshView();
    this.linkOffset = 0;
    this.generation = 0;
    this.displayedUrl = null;
    this.requestedUrl = null;
    this.cineTimer = null;
    this.ready = Promise.resolve();
    this.facts = null;
    this.wlTimer = null;
    this.wlLast = 0;
    // The page named the first frame in the <img> (viewer/views.py,
    // viewport_slots): it is on screen, or on its way, before the series
    // list; no "Loading" over it while this script catches up.
    this.pageImage = Boolean(this.img.getAttribute("src"));
    new ResizeObserver(() => this.place()).observe(element);
  }

  get image() {
    return this.images[this.current] || null;
  }

  get position() {
    return this.image ? this.image.slice_position : null;
  }

  get hasImages() {
    return this.images.length > 0;
  }

  // --- Series ---------------------------------------------------------------

  open(studyUid, seriesUid, options) {
    this.ready = this.load(studyUid, seriesUid, options);
    return this.ready;
  }

  async load(studyUid, seriesUid, { index = 0 } = {}) {
    this.stopCine();
    this.generation += 1;
    this.setLoading(!this.pageImage);
    let series;
    try {
      series = await getJson(seriesUrl(studyUid, seriesUid));
      requestWarmUp(seriesUrl(studyUid, seriesUid));
    } catch {
      this.setLoading(false);
      this.showMessage(labels.failed);
      return;
    }
    this.studyUid = studyUid;
    this.seriesUid = seriesUid;
    this.modality = series.modality || "";
    this.images = seriesImages(series);
    this.factsUrl = series.facts_url || "";
    this.window = null;
    this.voi = 0;
    this.shownWindow = null;
    this.seriesDefault = series.default_window
      ? { wc: series.default_window.center, ww: series.default_window.width }
      : null;
    this.view = freshView();
    this.invert = false;
    this.img.classList.remove("inverted");
    this.frames.clear();
    this.tiles.clear();
    this.displayedUrl = null;
    this.el.dataset.seriesUid = seriesUid;
    this.el.dataset.studyUid = studyUid;
    this.el.classList.toggle("prior", studyUid !== config.studyUid);
    this.setSeriesOverlay(series);
    this.setLoading(false);
    this.hub.seriesOpened(this);
    if (!this.images.length) {
      this.img.removeAttribute("src");
      this.showMessage(labels.empty);
      return;
    }
    this.showMessage("");
    await this.show(index);
  }

  indexOf(sopUid, frame) {
    return this.images.findIndex(
      (image) => image.sop_instance_uid === sopUid && image.frame === frame,
    );
  }

  nearestIndex(position) {
    let best = -1;
    let distance = Infinity;
    this.images.forEach((image, index) => {
      if (image.slice_position === null) return;
      const d = Math.abs(image.slice_position - position);
      if (d < distance) {
        best = index;
        distance = d;
      }
    });
    return best;
  }

  // --- Frames ---------------------------------------------------------------

  // The size to ask the server for: what the viewport shows of the image,
  // in device pixels, rounded up to the server's steps; none when that is
  // the stored size anyway (so the frame stays lossless).
  wantedSize(image) {
    const native = Math.max(image.rows || 0, image.columns || 0);
    if (!native) return null;
    const box = this.box();
    if (!box.width || !box.height) return null;
    const ratio = Math.min(window.devicePixelRatio || 1, MAX_PIXEL_RATIO);
    const scale = fitScale(this.view, box, image) * this.view.zoom * ratio;
    const needed = Math.ceil(native * scale);
    const step = config.sizeSteps.find((s) => s >= needed);
    if (native > OVERVIEW_SIDE) return Math.min(step || OVERVIEW_SIDE, OVERVIEW_SIDE);
    return step && step < native ? step : null;
  }

  deviceScale(image) {
    const ratio = Math.min(window.devicePixelRatio || 1, MAX_PIXEL_RATIO);
    return fitScale(this.view, this.box(), image) * this.view.zoom * ratio;
  }

  // The window of the frame on screen, for tiles that must match it.
  windowQuery() {
    const shown = this.window || this.shownWindow;
    return shown ? new URLSearchParams({ wc: shown.wc, ww: shown.ww }).toString() : "";
  }

  updateTiles() {
    const image = this.image;
    const matrix = this.matrix();
    if (!image || !matrix || !this.displayedUrl) return;
    this.tiles.update(image, matrix, this.box(), this.deviceScale(image), this.windowQuery());
  }

  frameUrl(image) {
    const query = new URLSearchParams();
    if (this.window) {
      query.set("wc", this.window.wc);
      query.set("ww", this.window.ww);
    } else if (this.voi) {
      query.set("voi", this.voi);
    }
    const size = this.wantedSize(image);
    if (size) query.set("size", size);
    const text = query.toString();
    return text ? `${image.url}?${text}` : image.url;
  }

  async show(index, { prefetch = true, source = "program" } = {}) {
    if (!this.images.length) return;
    this.current = Math.min(Math.max(index, 0), this.images.length - 1);
    const generation = ++this.generation;
    const image = this.image;
    const url = this.frameUrl(image);
    this.requestedUrl = url;
    this.setImageOverlay();
    this.place();
    if (source === "user") this.hub.scrolled(this);
    this.hub.frameChanged(this);

    const timer = this.pageImage
      ? null
      : setTimeout(() => this.setLoading(true), LOADING_DELAY_MS);
    this.previews.cancel();
    try {
      const frame = await this.frames.load(url);
      if (generation !== this.generation) return;
      this.img.src = frame.blobUrl;
      this.pageImage = false;
      this.lossyMarker.hidden = true;
      this.previews.release();
      this.displayedUrl = url;
      this.shownWindow = frame.wc !== null && frame.ww !== null
        ? { wc: Number(frame.wc), ww: Number(frame.ww) }
        : null;
      this.showMessage("");
      this.setWindowOverlay();
      this.updateTiles();
    } catch {
      if (generation === this.generation) this.showMessage(labels.failed);
    } finally {
      clearTimeout(timer);
      if (generation === this.generation) this.setLoading(false);
    }
    if (generation !== this.generation) return;
    if (prefetch) this.prefetch();
    this.evict();
  }

  prefetch() {
    this.frames.prefetch(this.images.map((image) => this.frameUrl(image)), this.current);
  }

  // A small lossy JPEG while W/L is dragged; show() puts the lossless frame back.
  showPreview(frame) {
    if (!this.image) return;
    this.img.src = frame.blobUrl;
    this.lossyMarker.hidden = false;
    this.tiles.clear();  // drawn at the old window; back when the drag ends
  }

  evict() {
    const keep = new Set([this.displayedUrl]);
    for (let d = -KEEP_RADIUS; d <= KEEP_RADIUS; d += 1) {
      const image = this.images[this.current + d];
      if (image) keep.add(this.frameUrl(image));
    }
    this.frames.keepOnly(keep);
  }

  scrollBy(steps) {
    return this.show(this.current + steps, { source: "user" });
  }

  // --- Window ---------------------------------------------------------------

  currentWindow() {
    return this.window || this.shownWindow;
  }

  // The file's VOI choice the frame is shown with (from the frame's facts),
  // as the server picks it: the chosen one, else the first.
  voiChoice() {
    const choices = (this.facts && this.facts.voi_choices) || [];
    return choices[this.voi] || choices[0] || null;
  }

  // The window the server applies when the reader chose none, known before
  // the frame comes back: the file's choice from the frame's facts (none
  // for a LUT), else the image's window from the series list.
  fileWindow() {
    const choice = this.voiChoice();
    if (choice) return choice.kind === "window" ? { wc: choice.center, ww: choice.width } : null;
    const image = this.image;
    return image && image.window_center !== null && image.window_width
      ? { wc: image.window_center, ww: image.window_width }
      : null;
  }

  // Where a W/L drag starts on a frame shown through a VOI LUT: the window
  // spanning the LUT's input range (viewer/image_info.py).
  voiWindow() {
    const choice = this.voiChoice();
    return choice && choice.center !== null ? { wc: choice.center, ww: choice.width } : null;
  }

  setWindow(wc, ww, { throttled = false, source = "user" } = {}) {
    this.window = { wc: Math.round(wc), ww: Math.max(1, Math.round(ww)) };
    this.setWindowOverlay();
    if (source === "user") this.hub.windowChanged(this);
    if (!throttled) {
      clearTimeout(this.wlTimer);
      this.show(this.current);
      return;
    }
    const wait = WL_THROTTLE_MS - (performance.now() - this.wlLast);
    clearTimeout(this.wlTimer);
    const fire = () => {
      this.wlLast = performance.now();
      const url = this.frameUrl(this.image);
      this.previews.request(`${url}${url.includes("?") ? "&" : "?"}preview=1`);
    };
    if (wait <= 0) fire();
    else this.wlTimer = setTimeout(fire, wait);
  }

  setVoi(index, { source = "user" } = {}) {
    this.window = null;
    this.voi = index;
    this.shownWindow = this.fileWindow();
    this.setWindowOverlay();  // not the old window until the frame is back
    if (source === "user") this.hub.windowChanged(this);
    this.show(this.current);
  }

  // --- View -----------------------------------------------------------------

  box() {
    return { width: this.el.clientWidth, height: this.el.clientHeight };
  }

  matrix() {
    const image = this.image;
    if (!image || !image.rows || !image.columns) return null;
    return viewMatrix(this.view, this.box(), image);
  }

  // Put the stage where the view says and redraw the marks; ask for a
  // sharper frame when zooming in needs more pixels than the one shown.
  place() {
    const image = this.image;
    const matrix = this.matrix();
    if (!image || !matrix) return;
    this.stage.style.width = `${image.columns}px`;
    this.stage.style.height = `${image.rows}px`;
    this.stage.style.transform = matrix.toString();
    this.marks.setAttribute("viewBox", `0 0 ${image.columns} ${image.rows}`);
    this.overlay.zoom.textContent = format(labels.zoom, {
      percent: Math.round(fitScale(this.view, this.box(), image) * this.view.zoom * 100),
    });
    this.hub.drawMarks(this);
    if (this.displayedUrl && this.frameUrl(image) !== this.requestedUrl) {
      this.show(this.current, { prefetch: false });
    } else {
      this.updateTiles();
    }
  }

  zoomAt(factor, x, y) {
    zoomAbout(this.view, this.box(), factor, x, y);
    this.place();
  }

  panBy(dx, dy) {
    this.view.panX += dx;
    this.view.panY += dy;
    this.place();
  }

  rotate() {
    this.view.rotation = (this.view.rotation + 90) % 360;
    this.place();
  }

  flip(axis) {
    if (axis === "h") this.view.flipH = !this.view.flipH;
    else this.view.flipV = !this.view.flipV;
    this.place();
  }

  setInvert(on) {
    this.invert = on;
    this.img.classList.toggle("inverted", on);
    this.tiles.layer.classList.toggle("inverted", on);
  }

  reset() {
    this.view = freshView();
    this.setInvert(false);
    this.window = null;
    this.voi = 0;
    this.shownWindow = this.fileWindow();
    this.setWindowOverlay();  // not the old window until the frame is back
    this.hub.windowChanged(this);
    this.place();
    this.show(this.current);
  }

  // --- Cine -----------------------------------------------------------------

  // Frames of the instance on screen, played at the file's rate.
  playCine(fps) {
    this.stopCine();
    const image = this.image;
    if (!image || image.number_of_frames < 2 || !fps) return;
    const first = this.indexOf(image.sop_instance_uid, 1);
    const interval = 1000 / fps;
    const tick = async () => {
      const started = performance.now();
      const next = this.image.frame >= image.number_of_frames
        ? first
        : this.current + 1;
      await this.show(next, { prefetch: true, source: "user" });
      if (!this.cineTimer) return;
      const spent = performance.now() - started;
      this.cineTimer = setTimeout(tick, Math.max(0, interval - spent));
    };
    this.cineTimer = setTimeout(tick, interval);
    this.el.classList.add("playing");
  }

  stopCine() {
    clearTimeout(this.cineTimer);
    this.cineTimer = null;
    this.el.classList.remove("playing");
  }

  get playing() {
    return this.cineTimer !== null;
  }

  // --- Overlays -------------------------------------------------------------

  setLoading(on) {
    this.loading.hidden = !on;
  }

  showMessage(text) {
    this.message.textContent = text;
    this.message.hidden = !text;
  }

  setSeriesOverlay(series) {
    const number = series.series_number === null ? "" : series.series_number;
    this.overlay.series.textContent = format(labels.series, {
      number,
      description: series.series_description,
    });
    const study = this.hub.studyFacts(this.studyUid);
    if (study) {
      this.overlay.study.textContent = study.date;
      this.overlay.description.textContent = study.description;
    }
  }

  setImageOverlay() {
    const image = this.image;
    this.overlay.position.textContent = format(labels.position, {
      n: this.current + 1,
      total: this.images.length,
    });
    this.overlay.instance.textContent = image.instance_number === null
      ? ""
      : format(labels.instance, { number: image.instance_number });
    this.overlay.frame.textContent = image.number_of_frames > 1
      ? format(labels.frame, { n: image.frame, total: image.number_of_frames })
      : "";
    this.overlay.location.textContent = image.slice_position === null
      ? ""
      : format(labels.location, { mm: number(image.slice_position) });
  }

  setWindowOverlay() {
    const shown = this.currentWindow();
    const choice = shown ? null : this.voiChoice();
    if (shown) {
      this.overlay.wl.textContent = format(labels.window, {
        ww: Math.round(shown.ww),
        wc: Math.round(shown.wc),
      });
    } else if (choice && choice.kind === "lut" && this.displayedUrl) {
      // Numbered as in the window menu (viewer.js, refreshVoiMenu).
      this.overlay.wl.textContent = format(labels.voiLutShown, { n: choice.index + 1 });
    } else {
      this.overlay.wl.textContent = "";
    }
  }

  setFps(fps) {
    this.overlay.fps.textContent = fps ? format(labels.fps, { fps: number(fps) }) : "";
  }

  setKey(on) {
    this.overlay.key.textContent = on ? labels.keyImage : "";
    this.el.classList.toggle("key", on);
  }
}
