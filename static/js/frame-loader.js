// Rendered frames of one series: fetched ahead, kept in memory only.
//
//   const loader = new FrameLoader({ concurrency: 6 });
//   loader.addEventListener("progress", (e) => show(e.detail.loaded, e.detail.total));
//   loader.prefetch(urls, index);  // a series' frame URLs in order, and where the reader is
//   const frame = await loader.load(urls[index]);  // {blobUrl, wc, ww, error, lossy}
//   loader.clear();                // another series, or the page goes away
//
// The frame asked for with load() goes first; the rest of the series follows
// nearest to the reader first, at most `concurrency` requests at a time (a
// browser opens six connections per host). Calling prefetch() again with the
// reader's new index re-orders what is still waiting; with other URLs (a new
// series or window) it cancels the requests for the old ones.
//
// Nothing lands on disk: every request is made with cache "no-store", the
// images live as blob URLs, and each blob URL is revoked when its frame is
// dropped (beyond `maxBytes`, farthest from the reader first) or cleared.
// Nothing goes to Cache Storage, IndexedDB or localStorage.

const DEFAULT_CONCURRENCY = 6;
const DEFAULT_MAX_BYTES = 256 * 1024 * 1024;

// One image request; the caller owns the blob URL and must revoke it.
export async function fetchImage(url, signal) {
  const response = await fetch(url, { cache: "no-store", credentials: "same-origin", signal });
  if (!response.ok) throw new Error(`HTTP ${response.status}`);
  const blob = await response.blob();
  return {
    blobUrl: URL.createObjectURL(blob),
    bytes: blob.size,
    wc: response.headers.get("X-Window-Center"),
    ww: response.headers.get("X-Window-Width"),
    error: response.headers.get("X-Render-Error") === "1",
    lossy: response.headers.get("X-Lossy-Preview") === "1",
  };
}

export class FrameLoader extends EventTarget {
  constructor({ concurrency = DEFAULT_CONCURRENCY, maxBytes = DEFAULT_MAX_BYTES } = {}) {
    super();
    this.concurrency = concurrency;
    this.maxBytes = maxBytes;
    this.entries = new Map(); // url -> {promise, resolve, reject, frame, controller, state}
    this.order = [];          // the series' URLs, in reading order
    this.position = new Map(); // url -> index in order
    this.index = 0;
    this.urgent = [];         // URLs asked for with load(), not yet started
    this.running = 0;
    this.bytes = 0;
  }

  get progress() {
    let loaded = 0;
    for (const url of this.order) {
      if (this.entries.get(url)?.state === "done") loaded += 1;
    }
    return { loaded, total: this.order.length };
  }

  // The frame on screen: fetched before anything prefetched.
  load(url) {
    const entry = this.entry(url);
    if (entry.state === "waiting" && !this.urgent.includes(url)) this.urgent.push(url);
    this.pump();
    return entry.promise;
  }

  prefetch(urls, index = 0) {
    const same = urls.length === this.order.length && urls.every((u, i) => u === this.order[i]);
    if (!same) {
      const wanted = new Set(urls);
      for (const url of [...this.entries.keys()]) {
        if (!wanted.has(url) && !this.urgent.includes(url)) this.drop(url);
      }
      this.order = [...urls];
      this.position = new Map(urls.map((url, i) => [url, i]));
    }
    this.index = index;
    for (const url of urls) this.entry(url);
    this.report();
    this.pump();
  }

  // Kept for callers of the simple store: frames of the current series stay.
  keepOnly(urls) {
    for (const url of [...this.entries.keys()]) {
      if (!urls.has(url) && !this.position.has(url)) this.drop(url);
    }
  }

  clear() {
    for (const url of [...this.entries.keys()]) this.drop(url);
    this.order = [];
    this.position = new Map();
    this.urgent = [];
    this.report();
  }

  // --- Inside ------------------------------------------------------------------

  entry(url) {
    let entry = this.entries.get(url);
    if (entry) return entry;
    entry = { state: "waiting", frame: null, controller: null };
    entry.promise = new Promise((resolve, reject) => {
      entry.resolve = resolve;
      entry.reject = reject;
    });
    entry.promise.catch(() => {});
    this.entries.set(url, entry);
    return entry;
  }

  next() {
    while (this.urgent.length) {
      const url = this.urgent.shift();
      if (this.entries.get(url)?.state === "waiting") return url;
    }
    let best = null;
    let bestDistance = Infinity;
    for (const url of this.order) {
      if (this.entries.get(url)?.state !== "waiting") continue;
      const distance = Math.abs(this.position.get(url) - this.index);
      if (distance < bestDistance) {
        best = url;
        bestDistance = distance;
      }
    }
    return best;
  }

  pump() {
    while (this.running < this.concurrency) {
      const url = this.next();
      if (!url) return;
      this.start(url, this.entries.get(url));
    }
  }

  async start(url, entry) {
    entry.state = "loading";
    entry.controller = new AbortController();
    this.running += 1;
    try {
      const frame = await fetchImage(url, entry.controller.signal);
      if (this.entries.get(url) !== entry) {
        URL.revokeObjectURL(frame.blobUrl); // dropped while it was on its way
      } else {
        entry.frame = frame;
        entry.state = "done";
        this.bytes += frame.bytes;
        entry.resolve(frame);
        this.trim();
        this.report();
      }
    } catch (error) {
      if (this.entries.get(url) === entry) this.entries.delete(url);
      entry.reject(error);
    } finally {
      this.running -= 1;
      this.pump();
    }
  }

  drop(url) {
    const entry = this.entries.get(url);
    if (!entry) return;
    this.entries.delete(url);
    if (entry.controller && entry.state === "loading") entry.controller.abort();
    if (entry.frame) {
      URL.revokeObjectURL(entry.frame.blobUrl);
      this.bytes -= entry.frame.bytes;
    }
    entry.reject(new DOMException("dropped", "AbortError"));
  }

  // Over the memory bound: drop the loaded frames farthest from the reader.
  trim() {
    if (this.bytes <= this.maxBytes) return;
    const loaded = this.order.filter((url) => this.entries.get(url)?.state === "done");
    loaded.sort((a, b) =>
      Math.abs(this.position.get(b) - this.index) - Math.abs(this.position.get(a) - this.index));
    for (const url of loaded) {
      if (this.bytes <= this.maxBytes) return;
      this.drop(url);
    }
  }

  report() {
    this.dispatchEvent(new CustomEvent("progress", { detail: this.progress }));
  }
}

// The latest of a stream of requests (W/L previews while the mouse moves):
// one in flight at a time, the newest waiting one replaces older ones, and
// the previous image's blob URL is revoked when the next one is shown.
export class LatestOnly {
  constructor(onImage) {
    this.onImage = onImage;
    this.pending = null;
    this.busy = false;
    this.shown = null;
    this.controller = null;
  }

  request(url) {
    this.pending = url;
    if (!this.busy) this.run();
  }

  async run() {
    this.busy = true;
    while (this.pending) {
      const url = this.pending;
      this.pending = null;
      this.controller = new AbortController();
      try {
        const frame = await fetchImage(url, this.controller.signal);
        if (this.controller.signal.aborted) URL.revokeObjectURL(frame.blobUrl);
        else this.show(frame);
      } catch {
        // A lost preview is replaced by the next one or the lossless frame.
      }
    }
    this.busy = false;
  }

  show(frame) {
    const previous = this.shown;
    this.shown = frame;
    this.onImage(frame);
    if (previous) URL.revokeObjectURL(previous.blobUrl);
  }

  // Stop previews; call release() once the image that replaces them is on screen.
  cancel() {
    this.pending = null;
    if (this.controller) this.controller.abort();
  }

  release() {
    if (this.shown) URL.revokeObjectURL(this.shown.blobUrl);
    this.shown = null;
  }
}

// A thin bar over a viewport that follows the loader's progress.
export function attachProgress(loader, container, label) {
  const bar = document.createElement("div");
  bar.className = "frame-progress";
  bar.setAttribute("role", "progressbar");
  bar.setAttribute("aria-valuemin", "0");
  const fill = document.createElement("div");
  fill.className = "frame-progress-fill";
  bar.append(fill);
  container.append(bar);
  loader.addEventListener("progress", ({ detail }) => {
    const { loaded, total } = detail;
    bar.hidden = total === 0;
    bar.setAttribute("aria-valuemax", String(total));
    bar.setAttribute("aria-valuenow", String(loaded));
    bar.setAttribute("aria-label", label.replace("%(loaded)s", loaded).replace("%(total)s", total));
    bar.classList.toggle("complete", total > 0 && loaded === total);
    fill.style.width = total ? `${(100 * loaded) / total}%` : "0";
  });
  bar.hidden = true;
  return bar;
}

// The marker shown while a lossy preview is on screen.
export function attachLossyMarker(container, text) {
  const marker = document.createElement("div");
  marker.className = "lossy-marker";
  marker.setAttribute("role", "status");
  marker.textContent = text;
  marker.hidden = true;
  container.append(marker);
  return marker;
}

// Ask the server to render a series into its render cache (viewer/warm.py);
// the page's sign-out form carries the CSRF token that a POST needs.
export function requestWarmUp(seriesUrl) {
  const token = document.querySelector("input[name=csrfmiddlewaretoken]");
  if (!token) return;
  fetch(`${seriesUrl}warm`, {
    method: "POST",
    cache: "no-store",
    credentials: "same-origin",
    headers: { "X-CSRFToken": token.value },
  }).catch(() => {});
}
