// Keeping viewports in step: linked series scroll by slice position, and
// other windows of the same browser (a second monitor) follow through a
// BroadcastChannel. Messages carry UIDs, indices and windows only: nothing
// is stored, and the channel lives only as long as the pages.

const CHANNEL = "nimbus-viewer";

// Offsets taken when linking: series of one study share a frame of
// reference (offset 0); a prior is aligned where the reader had it.
export function linkViewports(viewports, reference) {
  for (const viewport of viewports) {
    if (!viewport.hasImages || viewport.position === null || !reference.hasImages) {
      viewport.linkOffset = 0;
    } else if (viewport.studyUid === reference.studyUid) {
      viewport.linkOffset = 0;
    } else {
      viewport.linkOffset = viewport.position - (reference.position ?? 0);
    }
  }
}

// Make the other viewports follow ``source``: the same series by index,
// linked ones by the nearest slice position.
export function follow(source, viewports, linked) {
  for (const viewport of viewports) {
    if (viewport === source || !viewport.hasImages) continue;
    if (viewport.seriesUid === source.seriesUid) {
      if (viewport.current !== source.current) viewport.show(source.current);
      continue;
    }
    if (!linked || source.position === null) continue;
    const target = source.position - source.linkOffset + viewport.linkOffset;
    const index = viewport.nearestIndex(target);
    if (index >= 0 && index !== viewport.current) viewport.show(index);
  }
}

export class WindowSync {
  constructor(onMessage) {
    this.channel = "BroadcastChannel" in window ? new BroadcastChannel(CHANNEL) : null;
    if (this.channel) this.channel.onmessage = (event) => onMessage(event.data);
    window.addEventListener("pagehide", () => this.close());
  }

  post(message) {
    if (this.channel) this.channel.postMessage(message);
  }

  scrolled(viewport) {
    this.post({
      type: "scroll",
      study: viewport.studyUid,
      series: viewport.seriesUid,
      index: viewport.current,
      position: viewport.position,
    });
  }

  windowed(viewport) {
    this.post({
      type: "window",
      series: viewport.seriesUid,
      window: viewport.window,
      voi: viewport.voi,
    });
  }

  close() {
    if (this.channel) this.channel.close();
    this.channel = null;
  }
}

// Apply a message from another window, without sending anything back.
export function applyRemote(message, viewports, linked) {
  let moved = null;
  for (const viewport of viewports) {
    if (!viewport.hasImages) continue;
    const sameSeries = viewport.seriesUid === message.series;
    if (message.type === "window" && sameSeries) {
      if (message.window) {
        viewport.setWindow(message.window.wc, message.window.ww, { source: "remote" });
      } else {
        viewport.setVoi(message.voi || 0, { source: "remote" });
      }
    } else if (message.type === "scroll" && sameSeries) {
      if (viewport.current !== message.index) viewport.show(message.index);
      moved = moved || viewport;
    } else if (
      message.type === "scroll" && linked && message.position !== null
      && viewport.studyUid === message.study
    ) {
      const index = viewport.nearestIndex(message.position);
      if (index >= 0 && index !== viewport.current) viewport.show(index);
      moved = moved || viewport;
    }
  }
  // This window's own linked viewports (a prior beside the series) follow
  // as if the reader had scrolled here.
  if (moved) follow(moved, viewports, linked);
}
