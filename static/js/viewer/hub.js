// The viewer's conductor: the viewports, the layout, the chosen tool, the
// draft measurement, and who follows whom.

import { config, labels } from "./config.js";
import { drawMarks, draftText } from "./marks.js";
import { Store } from "./store.js";
import { applyRemote, follow, linkViewports, WindowSync } from "./sync.js";
import { Viewport } from "./viewport.js";

const MARK_TOOLS = new Set(["length", "angle", "ellipse", "probe"]);
const LAYOUT_SIZES = { "1x1": 1, "1x2": 2, "2x2": 4 };

export class Hub {
  constructor(root) {
    this.root = root;
    this.container = root.querySelector("#viewports");
    this.store = new Store();
    this.tool = "wl";
    this.touchWl = false;
    this.linked = false;
    this.layout = "1x1";
    this.draft = null;
    this.draftViewport = null;
    this.listeners = [];
    this.studies = studyFacts(root);
    this.viewports = [...root.querySelectorAll(".viewport")].map(
      (element) => new Viewport(element, this),
    );
    this.active = this.viewports[0];
    this.windows = new WindowSync((message) => {
      applyRemote(message, this.visible(), this.linked);
    });
  }

  // Called with a change of the active viewport or of its frame.
  onChange(listener) {
    this.listeners.push(listener);
  }

  changed() {
    for (const listener of this.listeners) listener(this.active);
  }

  visible() {
    return this.viewports.slice(0, LAYOUT_SIZES[this.layout]);
  }

  studyFacts(studyUid) {
    return this.studies.get(studyUid);
  }

  // --- Layout and series -----------------------------------------------------

  setLayout(layout, assignments = []) {
    this.layout = layout;
    this.container.dataset.layout = layout;
    const shown = this.visible();
    this.viewports.forEach((viewport, i) => {
      viewport.el.hidden = i >= shown.length;
      if (viewport.el.hidden) viewport.stopCine();
    });
    const opened = new Set(shown.filter((v) => v.seriesUid).map((v) => v.seriesUid));
    const series = allSeries(this.root);
    shown.forEach((viewport, i) => {
      const wanted = assignments[i];
      if (wanted) {
        viewport.open(wanted.study, wanted.series);
      } else if (!viewport.seriesUid && series.length) {
        const next = series.find((s) => !opened.has(s.series)) || series[0];
        opened.add(next.series);
        viewport.open(next.study, next.series);
      }
    });
    if (!shown.includes(this.active)) this.activate(shown[0]);
    this.changed();
  }

  activate(viewport) {
    if (this.active === viewport) return;
    this.active = viewport;
    for (const v of this.viewports) v.el.classList.toggle("active", v === viewport);
    this.changed();
  }

  openInActive(studyUid, seriesUid, options) {
    return this.active.open(studyUid, seriesUid, options);
  }

  seriesOpened(viewport) {
    this.store.loadAnnotations(viewport.studyUid).then(() => this.drawMarks(viewport));
    if (viewport === this.active) this.changed();
  }

  frameChanged(viewport) {
    const image = viewport.image;
    viewport.setKey(this.store.isKey(image));
    this.store.frameFacts(viewport.images, viewport.current, viewport.factsUrl).then((facts) => {
      if (viewport.image !== image) return;
      viewport.facts = facts;
      viewport.setFps(facts.cine_fps);
      viewport.setWindowOverlay();  // a VOI LUT is named from the facts
      if (viewport === this.active) this.changed();
    }).catch(() => {});
    if (viewport === this.active) this.changed();
  }

  // --- Following ---------------------------------------------------------------

  scrolled(viewport) {
    follow(viewport, this.visible(), this.linked);
    this.windows.scrolled(viewport);
  }

  windowChanged(viewport) {
    this.windows.windowed(viewport);
  }

  setLinked(on) {
    this.linked = on;
    if (on) linkViewports(this.visible(), this.active);
    this.changed();
  }

  // --- Measurements --------------------------------------------------------------

  isMarkTool(tool) {
    return MARK_TOOLS.has(tool);
  }

  setTool(tool) {
    this.cancelDraft();
    this.tool = tool;
    for (const viewport of this.viewports) viewport.el.dataset.activeTool = tool;
    this.changed();
  }

  startDraft(viewport, draft) {
    this.cancelDraft();
    this.draft = draft;
    this.draftViewport = viewport;
    this.redrawDraft();
  }

  redrawDraft() {
    if (!this.draft) return;
    this.draft.text = draftText(this.draft, this.draftViewport.facts);
    this.drawMarks(this.draftViewport);
  }

  cancelDraft() {
    const viewport = this.draftViewport;
    this.draft = null;
    this.draftViewport = null;
    if (viewport) this.drawMarks(viewport);
  }

  finishDraft(viewport) {
    const { kind, points } = this.draft;
    this.cancelDraft();
    this.saveMark(viewport, kind, points);
  }

  async saveMark(viewport, kind, points) {
    const image = viewport.image;
    const rounded = points.map(([x, y]) => [round(x), round(y)]);
    try {
      await this.store.addAnnotation(image, kind, rounded);
    } catch (error) {
      viewport.showMessage((error.data && error.data.detail) || labels.measureFailed);
      setTimeout(() => viewport.showMessage(""), 3000);
      return;
    }
    this.drawMarksFor(image);
  }

  async deleteMark(annotation) {
    await this.store.deleteAnnotation(annotation);
    for (const viewport of this.viewports) this.drawMarks(viewport);
  }

  drawMarksFor(image) {
    for (const viewport of this.viewports) {
      if (viewport.image && viewport.image.url === image.url) this.drawMarks(viewport);
    }
  }

  drawMarks(viewport) {
    const draft = this.draftViewport === viewport ? this.draft : null;
    const saved = this.store.annotationsOn(viewport.image);
    drawMarks(viewport, saved, draft, (annotation) => this.deleteMark(annotation));
  }

  // --- Key images ------------------------------------------------------------------

  async toggleKey() {
    const image = this.active.image;
    if (!image) return;
    await this.store.setKey(image, !this.store.isKey(image));
    for (const viewport of this.viewports) viewport.setKey(this.store.isKey(viewport.image));
    this.changed();
    return this.store.keyImages;
  }

  async showKeyImage(seriesUid, sopUid, frame) {
    const viewport = this.active;
    if (viewport.seriesUid !== seriesUid) await viewport.open(config.studyUid, seriesUid);
    const index = viewport.indexOf(sopUid, frame);
    if (index >= 0) viewport.show(index, { source: "user" });
  }
}

function round(value) {
  return Math.round(value * 100) / 100;
}

function allSeries(root) {
  return [...root.querySelectorAll(".series-thumb")].map((thumb) => ({
    study: thumb.dataset.studyUid,
    series: thumb.dataset.seriesUid,
  }));
}

// The date and description shown in each viewport's corner, per study.
function studyFacts(root) {
  const facts = new Map();
  for (const element of root.querySelectorAll("[data-study-facts]")) {
    facts.set(element.dataset.studyUid, {
      date: element.dataset.studyDate,
      description: element.dataset.studyDescription,
    });
  }
  return facts;
}
