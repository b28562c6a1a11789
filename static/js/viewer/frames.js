// Rendered frames, held in memory only.
//
// Each frame is fetched with cache: "no-store" and kept as a blob URL while
// it is near the one on screen; every blob URL dropped is revoked, and all of
// them when the page goes away, so no image of the study outlives the page.
// (A prefetching loader can take this class's place: it needs load, keepOnly
// and clear.)

export class FrameStore {
  constructor() {
    this.entries = new Map(); // url -> {promise, blobUrl, dropped}
  }

  load(url) {
    const known = this.entries.get(url);
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
      if (this.entries.get(url) === entry) this.entries.delete(url);
    });
    this.entries.set(url, entry);
    return entry.promise;
  }

  drop(url) {
    const entry = this.entries.get(url);
    if (!entry) return;
    entry.dropped = true;
    if (entry.blobUrl) URL.revokeObjectURL(entry.blobUrl);
    this.entries.delete(url);
  }

  keepOnly(urls) {
    for (const url of [...this.entries.keys()]) {
      if (!urls.has(url)) this.drop(url);
    }
  }

  clear() {
    this.keepOnly(new Set());
  }
}
