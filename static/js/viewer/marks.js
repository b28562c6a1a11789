// Measurements drawn on a viewport: shapes in the stage's SVG (image pixel
// coordinates, so they follow zoom, pan, rotation and flips) and their
// values as text in a layer that is never rotated or mirrored.

import { format, labels, number } from "./config.js";
import { toScreen } from "./geometry.js";

const SVG = "http://www.w3.org/2000/svg";
const UNITS = { mm: "mm", px: "px", mm2: "mm²", px2: "px²" };

function svg(name, attributes) {
  const element = document.createElementNS(SVG, name);
  for (const [key, value] of Object.entries(attributes)) {
    element.setAttribute(key, value);
  }
  element.setAttribute("vector-effect", "non-scaling-stroke");
  return element;
}

function ellipseBox(points) {
  const [[x0, y0], [x1, y1]] = points;
  return {
    cx: (x0 + x1) / 2,
    cy: (y0 + y1) / 2,
    rx: Math.abs(x1 - x0) / 2,
    ry: Math.abs(y1 - y0) / 2,
  };
}

function shapes(kind, points) {
  if (kind === "length") {
    const [[x1, y1], [x2, y2]] = points;
    return [svg("line", { x1, y1, x2, y2 })];
  }
  if (kind === "angle") {
    return [svg("polyline", { points: points.map((p) => p.join(",")).join(" ") })];
  }
  if (kind === "ellipse") return [svg("ellipse", ellipseBox(points))];
  const [[cx, cy]] = points;
  return [svg("circle", { cx, cy, r: 2 })];
}

// The text of a saved measurement (values from the server).
export function measurementText(kind, m) {
  if (!m) return "";
  if (kind === "length") {
    const text = format(labels.length, { value: number(m.length), unit: UNITS[m.unit] });
    return m.spacing_source === "ImagerPixelSpacing"
      ? `${text} (${labels.detectorSpacing})`
      : text;
  }
  if (kind === "angle") return format(labels.angle, { value: number(m.angle) });
  if (kind === "ellipse") {
    return format(labels.roi, {
      mean: number(m.mean),
      sd: number(m.sd),
      unit: m.value_unit,
      area: number(m.area),
      area_unit: UNITS[m.area_unit],
    });
  }
  return format(labels.probe, { value: number(m.value), unit: m.value_unit });
}

// A length while it is being drawn, from the spacing the server gave.
export function draftText(draft, info) {
  if (draft.kind !== "length" || draft.points.length < 2) return "";
  const [[x0, y0], [x1, y1]] = draft.points;
  const spacing = info && info.pixel_spacing;
  const dx = (x1 - x0) * (spacing ? spacing[1] : 1);
  const dy = (y1 - y0) * (spacing ? spacing[0] : 1);
  return format(labels.length, {
    value: number(Math.hypot(dx, dy)),
    unit: spacing ? "mm" : "px",
  });
}

function anchor(kind, points) {
  if (kind === "ellipse") {
    const box = ellipseBox(points);
    return [box.cx + box.rx, box.cy - box.ry];
  }
  return points[points.length - 1];
}

export function drawMarks(viewport, saved, draft, onDelete) {
  const { marks, labelLayer } = viewport;
  marks.replaceChildren();
  labelLayer.replaceChildren();
  const matrix = viewport.matrix();
  if (!matrix) return;

  const items = [...saved.map((a) => ({ ...a, saved: true }))];
  if (draft) items.push({ ...draft, saved: false });
  for (const item of items) {
    const group = svg("g", { class: `mark mark-${item.kind}${item.saved ? "" : " draft"}` });
    group.append(...shapes(item.kind, item.points));
    marks.append(group);

    const text = item.saved ? measurementText(item.kind, item.measurement) : item.text;
    if (!text) continue;
    const [x, y] = toScreen(matrix, ...anchor(item.kind, item.points));
    const label = document.createElement("div");
    label.className = `mark-label mark-label-${item.kind}`;
    label.style.left = `${x + 6}px`;
    label.style.top = `${y - 6}px`;
    const value = document.createElement("span");
    value.textContent = text;
    label.append(value);
    if (item.saved) {
      label.dataset.annotationId = item.id;
      const remove = document.createElement("button");
      remove.type = "button";
      remove.className = "mark-delete";
      remove.textContent = "×";
      remove.title = labels.deleteMark;
      remove.setAttribute("aria-label", labels.deleteMark);
      remove.addEventListener("pointerdown", (event) => event.stopPropagation());
      remove.addEventListener("click", () => onDelete(item));
      label.append(remove);
    }
    labelLayer.append(label);
  }
}
