// Where the image sits in a viewport: one matrix from image pixels to
// viewport pixels, used for the image, the marks and the pointer alike.

export function freshView() {
  return { zoom: 1, panX: 0, panY: 0, rotation: 0, flipH: false, flipV: false };
}

// Scale at zoom 1: the whole image fits the viewport.
export function fitScale(view, box, image) {
  const quarter = view.rotation % 180 !== 0;
  const width = quarter ? image.rows : image.columns;
  const height = quarter ? image.columns : image.rows;
  return Math.min(box.width / width, box.height / height) || 1;
}

// Flips act on the screen, after the rotation: "flip horizontally" always
// mirrors left and right as the reader sees them.
export function viewMatrix(view, box, image) {
  const scale = fitScale(view, box, image) * view.zoom;
  return new DOMMatrix()
    .translate(box.width / 2 + view.panX, box.height / 2 + view.panY)
    .scale(view.flipH ? -1 : 1, view.flipV ? -1 : 1)
    .rotate(view.rotation)
    .scale(scale)
    .translate(-image.columns / 2, -image.rows / 2);
}

export function toImage(matrix, x, y) {
  const point = matrix.inverse().transformPoint(new DOMPoint(x, y));
  return [point.x, point.y];
}

export function toScreen(matrix, x, y) {
  const point = matrix.transformPoint(new DOMPoint(x, y));
  return [point.x, point.y];
}

// Zoom by factor keeping the point (x, y) of the viewport where it is.
export function zoomAbout(view, box, factor, x, y) {
  const zoom = Math.min(Math.max(view.zoom * factor, 0.1), 40);
  const applied = zoom / view.zoom;
  const fromCentreX = x - box.width / 2 - view.panX;
  const fromCentreY = y - box.height / 2 - view.panY;
  view.panX += fromCentreX * (1 - applied);
  view.panY += fromCentreY * (1 - applied);
  view.zoom = zoom;
}
