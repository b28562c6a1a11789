// What the viewer asked the server about frames and marks, for this page
// only (memory, never the browser's storage): frame facts, the reader's
// annotations and the study's key images.

import { config, frameEndpoint, getJson, send, studyUrl } from "./config.js";

const frameKey = (sopUid, frame) => `${sopUid}:${frame}`;
// Frame facts come a block at a time, the next block asked for halfway
// through this one, so scrolling makes no request per step.
const FACTS_BLOCK = 32;

export class Store {
  constructor() {
    this.facts = new Map();        // frame url -> promise of facts
    this.annotations = new Map();  // sop:frame -> [annotation]
    this.loadedStudies = new Map(); // study uid -> promise
    this.keyImages = [];
  }

  // The facts of `images[index]` (spacing, unit, VOI choices, cine rate),
  // from the series' facts.json by blocks when the series list names it,
  // else from the frame's own info.json.
  frameFacts(images, index, factsUrl) {
    const image = images[index];
    if (factsUrl) {
      for (const near of [index, index + FACTS_BLOCK / 2, index - FACTS_BLOCK / 2]) {
        if (near >= 0 && near < images.length) this.loadBlock(images, near, factsUrl);
      }
    }
    if (!this.facts.has(image.url)) this.remember(image, getJson(frameEndpoint(image, "info.json")));
    return this.facts.get(image.url);
  }

  loadBlock(images, index, factsUrl) {
    if (this.facts.has(images[index].url)) return;
    const start = index - (index % FACTS_BLOCK);
    const block = images.slice(start, start + FACTS_BLOCK);
    const answer = getJson(`${factsUrl}?start=${start}&count=${block.length}`).then((data) => {
      const byFrame = new Map(data.facts.map((f) => [frameKey(f.sop_instance_uid, f.frame), f]));
      return byFrame;
    });
    for (const image of block) {
      if (this.facts.has(image.url)) continue;
      // Matched by instance and frame: the series may have changed since its list.
      const key = frameKey(image.sop_instance_uid, image.frame);
      this.remember(image, answer.then((byFrame) => {
        if (!byFrame.has(key)) throw new Error("not in the block");
        return byFrame.get(key);
      }));
    }
  }

  remember(image, promise) {
    promise.catch(() => {
      if (this.facts.get(image.url) === promise) this.facts.delete(image.url);
    });
    this.facts.set(image.url, promise);
  }

  loadAnnotations(studyUid) {
    // The simplified mode has no annotations to show (config.annotationsUrl "").
    if (!config.annotationsUrl) return Promise.resolve();
    if (!this.loadedStudies.has(studyUid)) {
      const url = studyUrl(config.annotationsUrl, studyUid);
      const promise = getJson(url).then((data) => {
        for (const annotation of data.annotations) this.rememberAnnotation(annotation);
      });
      promise.catch(() => this.loadedStudies.delete(studyUid));
      this.loadedStudies.set(studyUid, promise);
    }
    return this.loadedStudies.get(studyUid);
  }

  annotationsOn(image) {
    if (!image) return [];
    return this.annotations.get(frameKey(image.sop_instance_uid, image.frame)) || [];
  }

  rememberAnnotation(annotation) {
    const key = frameKey(annotation.sop_instance_uid, annotation.frame);
    const list = (this.annotations.get(key) || []).filter((a) => a.id !== annotation.id);
    list.push(annotation);
    this.annotations.set(key, list);
  }

  async addAnnotation(image, kind, points) {
    const saved = await send("POST", frameEndpoint(image, "annotations/"), { kind, points });
    this.rememberAnnotation(saved);
    return saved;
  }

  async deleteAnnotation(annotation) {
    await send("DELETE", annotation.url);
    const key = frameKey(annotation.sop_instance_uid, annotation.frame);
    const list = (this.annotations.get(key) || []).filter((a) => a.id !== annotation.id);
    this.annotations.set(key, list);
  }

  async loadKeyImages() {
    this.keyImages = (await getJson(config.keyImagesUrl)).key_images;
    return this.keyImages;
  }

  isKey(image) {
    return Boolean(image) && this.keyImages.some(
      (k) => k.sop_instance_uid === image.sop_instance_uid && k.frame === image.frame,
    );
  }

  async setKey(image, on) {
    await send(on ? "PUT" : "DELETE", frameEndpoint(image, "key"));
    return this.loadKeyImages();
  }
}
