// The page's settings (the JSON script tag #viewer-config), text and requests.

export const config = JSON.parse(document.getElementById("viewer-config").textContent);
export const labels = config.labels;
const csrfToken = document.getElementById("viewer").dataset.csrfToken;

// Python's %-format as gettext leaves it: %(name)s slots and %% for "%".
export function format(template, values) {
  return template
    .replace(/%\((\w+)\)s/g, (_, name) => String(values[name] ?? ""))
    .replace(/%%/g, "%");
}

// Measurements in the page's language: 12.5 in English, 12,5 in French.
const numberFormats = new Map();
export function number(value, digits = 1) {
  if (!numberFormats.has(digits)) {
    const options = { minimumFractionDigits: digits, maximumFractionDigits: digits };
    numberFormats.set(digits, new Intl.NumberFormat(document.documentElement.lang || undefined, options));
  }
  return numberFormats.get(digits).format(Number(value));
}

export function seriesUrl(studyUid, seriesUid) {
  return config.seriesUrl
    .replace(config.studySlot, encodeURIComponent(studyUid))
    .replace(config.uidSlot, encodeURIComponent(seriesUid));
}

// The series list names each instance once, with the facts every instance
// shares in `common` and a frame URL template (docs/viewer.md); the page
// works with one entry per frame.
export function seriesImages(series) {
  const images = [];
  for (const listed of series.instances) {
    const instance = { ...series.common, ...listed };
    const url = series.frame_url.replace("{sop_instance_uid}", instance.sop_instance_uid);
    for (let frame = 1; frame <= Math.max(instance.number_of_frames, 1); frame += 1) {
      images.push({ ...instance, frame, url: url.replace("{frame}", frame) });
    }
  }
  return images;
}

export function studyUrl(template, studyUid) {
  return template.replace(config.studySlot, encodeURIComponent(studyUid));
}

// A frame's own endpoints sit under its PNG's path: .../frames/3.png ->
// .../frames/3/info.json, .../frames/3/annotations/, .../frames/3/key.
export function frameEndpoint(image, leaf) {
  return `${image.url.replace(/\.png$/, "")}/${leaf}`;
}

export async function getJson(url) {
  const response = await fetch(url, { cache: "no-store", credentials: "same-origin" });
  if (!response.ok) throw new Error(`HTTP ${response.status}`);
  return response.json();
}

export async function send(method, url, body) {
  const response = await fetch(url, {
    method,
    cache: "no-store",
    credentials: "same-origin",
    headers: { "Content-Type": "application/json", "X-CSRFToken": csrfToken },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const data = response.status === 204 ? null : await response.json();
  if (!response.ok) throw Object.assign(new Error(`HTTP ${response.status}`), { data });
  return data;
}
