// Pointer input on a viewport, mouse and touch alike (Pointer Events).
//
// Mouse: the left button runs the chosen tool, the right one windows, the
// middle one pans, the wheel scrolls (with Ctrl it zooms).
// Touch: one finger scrolls (or windows in touch W/L mode), two fingers
// pinch to zoom and move together to pan.

import { toImage } from "./geometry.js";

const SCROLL_DRAG_PX = 8;
const TOUCH_SCROLL_PX = 14;
const WHEEL_STEP_PX = 50;
const ZOOM_DRAG_PX = 200;  // dragging this far doubles or halves the zoom
const MIN_MARK_PX = 1;

export function attachPointer(viewport, hub) {
  const el = viewport.el;
  const touches = new Map();  // pointerId -> {x, y}
  let drag = null;
  let pinch = null;
  let wheelTravel = 0;

  const local = (event) => {
    const rect = el.getBoundingClientRect();
    return [event.clientX - rect.left, event.clientY - rect.top];
  };
  const imagePoint = (event) => {
    const matrix = viewport.matrix();
    return matrix ? toImage(matrix, ...local(event)) : null;
  };
  const capture = (event) => {
    try {
      el.setPointerCapture(event.pointerId);
    } catch {
      // A synthetic or already released pointer cannot be captured.
    }
  };

  function startDrag(event, mode) {
    const start = viewport.currentWindow() || viewport.seriesDefault
      || viewport.voiWindow();
    if (mode === "wl" && !start) return; // a colour image has no window
    const [x, y] = local(event);
    drag = {
      mode,
      x,
      y,
      lastX: x,
      lastY: y,
      travelled: 0,
      start,
      // Wide windows (CT, 16-bit MR) need bigger steps than 8-bit ones.
      sensitivity: start ? Math.max(0.5, start.ww / 300) : 1,
      step: event.pointerType === "touch" ? TOUCH_SCROLL_PX : SCROLL_DRAG_PX,
    };
  }

  function moveDrag(event) {
    const [x, y] = local(event);
    const dx = x - drag.x;
    const dy = y - drag.y;
    if (drag.mode === "wl") {
      viewport.setWindow(
        drag.start.wc + dy * drag.sensitivity,
        drag.start.ww + dx * drag.sensitivity,
        { throttled: true },
      );
    } else if (drag.mode === "scroll") {
      const steps = Math.trunc((dy - drag.travelled) / drag.step);
      if (steps) {
        drag.travelled += steps * drag.step;
        viewport.scrollBy(steps);
      }
    } else if (drag.mode === "zoom") {
      viewport.zoomAt(2 ** ((drag.lastY - y) / ZOOM_DRAG_PX), drag.x, drag.y);
    } else if (drag.mode === "pan") {
      viewport.panBy(x - drag.lastX, y - drag.lastY);
    }
    drag.lastX = x;
    drag.lastY = y;
  }

  function endDrag() {
    if (drag && drag.mode === "wl" && viewport.window) {
      clearTimeout(viewport.wlTimer);
      viewport.show(viewport.current);
    }
    drag = null;
  }

  // --- Measurements: a draft that becomes an annotation when finished ------

  function startMark(event, tool) {
    const point = imagePoint(event);
    if (!point) return;
    const draft = hub.draft;
    if (tool === "probe") {
      hub.saveMark(viewport, "probe", [point]);
      return;
    }
    if (tool === "angle" && draft && draft.kind === "angle" && draft.step === 2) {
      draft.points[2] = point;
      hub.finishDraft(viewport);
      return;
    }
    hub.startDraft(viewport, { kind: tool, points: [point, point], step: 1 });
  }

  function moveMark(event) {
    const draft = hub.draft;
    const point = imagePoint(event);
    if (!draft || !point || hub.draftViewport !== viewport) return;
    draft.points[draft.step] = point;
    hub.redrawDraft();
  }

  function endMark(event) {
    const draft = hub.draft;
    if (!draft || hub.draftViewport !== viewport || draft.step !== 1) return;
    const [[x0, y0], [x1, y1]] = draft.points;
    const matrix = viewport.matrix();
    const scale = matrix ? Math.hypot(matrix.a, matrix.b) : 1;
    if (Math.hypot(x1 - x0, y1 - y0) * scale < MIN_MARK_PX) {
      if (draft.kind !== "angle") hub.cancelDraft();
      return;
    }
    if (draft.kind === "angle") {
      draft.step = 2;
      draft.points[2] = imagePoint(event) || draft.points[1];
      return;
    }
    hub.finishDraft(viewport);
  }

  // --- Touch gestures ------------------------------------------------------

  function pinchState() {
    const [a, b] = [...touches.values()];
    return {
      distance: Math.hypot(b.x - a.x, b.y - a.y) || 1,
      x: (a.x + b.x) / 2,
      y: (a.y + b.y) / 2,
    };
  }

  function onTouchDown(event) {
    touches.set(event.pointerId, { x: local(event)[0], y: local(event)[1] });
    if (touches.size === 1) {
      startDrag(event, hub.touchWl ? "wl" : "scroll");
    } else if (touches.size === 2) {
      endDrag();
      pinch = pinchState();
    }
  }

  function onTouchMove(event) {
    if (!touches.has(event.pointerId)) return;
    const [x, y] = local(event);
    touches.set(event.pointerId, { x, y });
    if (pinch && touches.size === 2) {
      const now = pinchState();
      viewport.zoomAt(now.distance / pinch.distance, now.x, now.y);
      viewport.panBy(now.x - pinch.x, now.y - pinch.y);
      pinch = now;
    } else if (drag) {
      moveDrag(event);
    }
  }

  function onTouchUp(event) {
    touches.delete(event.pointerId);
    if (touches.size < 2) pinch = null;
    // Lifting one finger of a pinch must not start a scroll.
    if (touches.size === 0) endDrag();
    else drag = null;
  }

  // --- Events --------------------------------------------------------------

  el.addEventListener("pointerdown", (event) => {
    hub.activate(viewport);
    if (!viewport.hasImages) return;
    event.preventDefault();
    el.focus({ preventScroll: true });
    capture(event);
    if (event.pointerType === "touch") {
      onTouchDown(event);
      return;
    }
    if (event.button === 2) startDrag(event, "wl");
    else if (event.button === 1) startDrag(event, "pan");
    else if (event.button === 0 && hub.isMarkTool(hub.tool)) startMark(event, hub.tool);
    else if (event.button === 0) startDrag(event, hub.tool);
  });

  el.addEventListener("pointermove", (event) => {
    if (event.pointerType === "touch") onTouchMove(event);
    else if (drag) moveDrag(event);
    else moveMark(event);
  });

  const up = (event) => {
    if (el.hasPointerCapture(event.pointerId)) el.releasePointerCapture(event.pointerId);
    if (event.pointerType === "touch") onTouchUp(event);
    else if (drag) endDrag();
    else endMark(event);
  };
  el.addEventListener("pointerup", up);
  el.addEventListener("pointercancel", up);
  el.addEventListener("contextmenu", (event) => event.preventDefault());

  // One image per mouse-wheel notch; a touchpad's small deltas add up first.
  el.addEventListener("wheel", (event) => {
    if (!viewport.hasImages) return;
    event.preventDefault();
    if (event.ctrlKey) {
      const [x, y] = local(event);
      viewport.zoomAt(event.deltaY < 0 ? 1.1 : 1 / 1.1, x, y);
      return;
    }
    const pixels = event.deltaMode === WheelEvent.DOM_DELTA_PIXEL;
    if (!pixels || Math.abs(event.deltaY) >= WHEEL_STEP_PX) {
      wheelTravel = 0;
      viewport.scrollBy(Math.sign(event.deltaY));
      return;
    }
    wheelTravel += event.deltaY;
    if (Math.abs(wheelTravel) < WHEEL_STEP_PX) return;
    viewport.scrollBy(Math.sign(wheelTravel));
    wheelTravel = 0;
  }, { passive: false });
}
