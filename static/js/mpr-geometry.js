// Vectors and plane grids in patient coordinates (mm), for the MPR page.
//
// A grid is what the server describes (geometry JSON "planes", or the
// X-Plane-Grid header): origin (centre of the first pixel), column_direction
// (screen right), row_direction (screen down), pixel_spacing [between rows,
// between columns], rows, columns. Pixels may be rectangular.

export const sub = (a, b) => a.map((x, i) => x - b[i]);
export const add = (a, b) => a.map((x, i) => x + b[i]);
export const scale = (a, s) => a.map((x) => x * s);
export const dot = (a, b) => a.reduce((sum, x, i) => sum + x * b[i], 0);
export const cross = (a, b) => [
  a[1] * b[2] - a[2] * b[1],
  a[2] * b[0] - a[0] * b[2],
  a[0] * b[1] - a[1] * b[0],
];

// ``vector`` turned by ``degrees`` about the unit ``axis`` (Rodrigues).
export function rotate(vector, axis, degrees) {
  const angle = (degrees * Math.PI) / 180;
  const cos = Math.cos(angle);
  const sin = Math.sin(angle);
  return add(
    add(scale(vector, cos), scale(cross(axis, vector), sin)),
    scale(axis, dot(axis, vector) * (1 - cos)),
  );
}

export const normalOf = (grid) => cross(grid.column_direction, grid.row_direction);
export const rowSpacing = (grid) => grid.pixel_spacing[0];
export const columnSpacing = (grid) => grid.pixel_spacing[1];

// The image's size in mm: its pixels' centres plus half a pixel all round.
export function footprint(grid) {
  return { width: grid.columns * columnSpacing(grid), height: grid.rows * rowSpacing(grid) };
}

// Pixel (row, column) of a patient point projected on a grid.
export function pixelOf(grid, point) {
  const offset = sub(point, grid.origin);
  return {
    row: dot(offset, grid.row_direction) / rowSpacing(grid),
    column: dot(offset, grid.column_direction) / columnSpacing(grid),
  };
}

// Where a patient point falls on the footprint, in mm from its top left corner.
export function footprintOf(grid, point) {
  const { row, column } = pixelOf(grid, point);
  return { x: (column + 0.5) * columnSpacing(grid), y: (row + 0.5) * rowSpacing(grid) };
}

// Patient point of pixel (row, column) on the plane of ``grid`` moved to ``through``.
export function pointAt(grid, row, column, through) {
  const normal = normalOf(grid);
  const depth = dot(sub(through, grid.origin), normal);
  const inPlane = add(
    scale(grid.column_direction, column * columnSpacing(grid)),
    scale(grid.row_direction, row * rowSpacing(grid)),
  );
  return add(add(grid.origin, scale(normal, depth)), inPlane);
}

// The X-Plane-Grid header: origin;u;v;row spacing,column spacing;rows;columns.
export function parseGridHeader(header) {
  if (!header) return null;
  const [origin, u, v, spacing, rows, columns] = header.split(";");
  const numbers = (text) => text.split(",").map(Number);
  return {
    origin: numbers(origin),
    column_direction: numbers(u),
    row_direction: numbers(v),
    pixel_spacing: numbers(spacing),
    rows: Number(rows),
    columns: Number(columns),
  };
}
