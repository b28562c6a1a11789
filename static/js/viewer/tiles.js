// Tiles of a large image (CR, DX, mammography): when the reader zooms in
// further than the whole-frame image can show sharply, the visible part is
// fetched as 256-pixel tiles at the zoom level that matches the screen, so
// a 4,000 x 5,000 radiograph never travels whole.
//
// Tiles live in the viewport's stage, in image-pixel coordinates, under the
// same matrix as the image and the marks. They are held as in-memory blob
// URLs only and revoked when dropped.

import { toImage } from "./geometry.js";

// Whole frames up to this side are sharp enough; beyond, tiles take over.
export const OVERVIEW_SIDE = 1024;
// A safety bound: the level choice keeps tiles 128 to 282 screen pixels wide.
const MAX_TILES = 400;
// A tile may be enlarged this much before the next finer level is fetched.
const UPSCALE_TOLERANCE = 1.1;

export class TileLayer {
  constructor(stage, { marker = "" } = {}) {
    this.layer = document.createElement("div");
    this.layer.className = "vp-tiles";
    this.layer.dataset.label = marker;
    stage.insertBefore(this.layer, stage.querySelector(".vp-marks"));
    this.specs = new Map();   // frame URL -> tiles.json answer
    this.tiles = new Map();   // tile URL -> {element, blobUrl, controller}
    this.key = null;
  }

  // The tiles of `image` that cover the viewport under `matrix`, at the
  // level that `deviceScale` (screen pixels per image pixel) needs; none
  // when the whole-frame image is sharp enough.
  async update(image, matrix, box, deviceScale, windowQuery) {
    // Only the latest call may change the layer: an older one that waited
    // longer for its spec would drop the tiles of the current view.
    const call = (this.calls = (this.calls || 0) + 1);
    const native = Math.max(image.rows || 0, image.columns || 0);
    const overviewScale = Math.min(OVERVIEW_SIDE / native, 1);
    if (native <= OVERVIEW_SIDE || deviceScale <= overviewScale * 1.01) {
      this.clear();
      return;
    }
    const spec = await this.spec(image);
    if (call !== this.calls) return;
    if (!spec || !spec.large) {
      this.clear();
      return;
    }
    const level = chooseLevel(spec, deviceScale);
    const key = `${image.url}|${level.level}|${windowQuery}`;
    if (key !== this.key) this.clear();
    this.key = key;
    const wanted = visibleTiles(spec, level, matrix, box);
    const kept = new Set();
    for (const { x, y } of wanted) {
      const url = spec.tile_url
        .replace("{level}", level.level).replace("{x}", x).replace("{y}", y)
        + (windowQuery ? `?${windowQuery}` : "");
      kept.add(url);
      if (!this.tiles.has(url)) this.fetchTile(url, spec, level, x, y);
    }
    for (const [url, tile] of this.tiles) {
      if (!kept.has(url)) this.drop(url, tile);
    }
    this.layer.dataset.level = level.level;
  }

  async spec(image) {
    const url = image.url.replace(/\.png$/, "/tiles.json");
    if (!this.specs.has(url)) {
      const answer = fetch(url, { credentials: "same-origin" })
        .then((response) => (response.ok ? response.json() : null))
        .catch(() => null);
      this.specs.set(url, answer);
    }
    return this.specs.get(url);
  }

  fetchTile(url, spec, level, x, y) {
    const scale = 2 ** level.level;
    const element = document.createElement("img");
    element.className = "vp-tile";
    element.alt = "";
    element.draggable = false;
    element.style.left = `${x * spec.tile_size * scale}px`;
    element.style.top = `${y * spec.tile_size * scale}px`;
    const controller = new AbortController();
    const tile = { element, blobUrl: null, controller, loaded: false };
    this.tiles.set(url, tile);
    this.countPending();
    fetch(url, { credentials: "same-origin", signal: controller.signal })
      .then((response) => (response.ok ? response.blob() : Promise.reject()))
      .then((blob) => {
        if (this.tiles.get(url) !== tile) return;
        tile.blobUrl = URL.createObjectURL(blob);
        element.onload = () => {
          // A tile at the image's edge is smaller than the tile size.
          element.style.width = `${element.naturalWidth * scale}px`;
          element.style.height = `${element.naturalHeight * scale}px`;
          this.layer.appendChild(element);
          tile.loaded = true;
          this.countPending();
        };
        element.src = tile.blobUrl;
      })
      .catch(() => {});
  }

  drop(url, tile) {
    tile.controller.abort();
    if (tile.blobUrl) URL.revokeObjectURL(tile.blobUrl);
    tile.element.remove();
    this.tiles.delete(url);
    this.countPending();
  }

  // Tiles asked for and not on screen yet, for the page and its tests.
  countPending() {
    let pending = 0;
    for (const tile of this.tiles.values()) if (!tile.loaded) pending += 1;
    this.layer.dataset.pending = pending;
  }

  clear() {
    for (const [url, tile] of this.tiles) this.drop(url, tile);
    this.key = null;
    delete this.layer.dataset.level;
  }

  get count() {
    return this.layer.querySelectorAll(".vp-tile").length;
  }
}

// The coarsest level that gives about one tile pixel per screen pixel.
export function chooseLevel(spec, deviceScale) {
  let chosen = spec.levels[0];
  for (const level of spec.levels) {
    if (2 ** level.level * deviceScale <= UPSCALE_TOLERANCE) chosen = level;
  }
  return chosen;
}

// Tile columns and rows that the viewport's corners enclose, at most MAX_TILES.
export function visibleTiles(spec, level, matrix, box) {
  const corners = [[0, 0], [box.width, 0], [0, box.height], [box.width, box.height]]
    .map(([x, y]) => toImage(matrix, x, y));
  const span = spec.tile_size * 2 ** level.level;
  const xs = corners.map(([x]) => x);
  const ys = corners.map(([, y]) => y);
  const clamp = (value, limit) => Math.min(Math.max(value, 0), limit - 1);
  const x0 = clamp(Math.floor(Math.min(...xs) / span), level.columns);
  const x1 = clamp(Math.floor(Math.max(...xs) / span), level.columns);
  const y0 = clamp(Math.floor(Math.min(...ys) / span), level.rows);
  const y1 = clamp(Math.floor(Math.max(...ys) / span), level.rows);
  const wanted = [];
  for (let y = y0; y <= y1; y += 1) {
    for (let x = x0; x <= x1; x += 1) {
      if (wanted.length < MAX_TILES) wanted.push({ x, y });
    }
  }
  return wanted;
}
