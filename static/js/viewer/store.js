// What the viewer asked the server about frames and marks, for this page
// only (memory, never the browser's storage): frame facts, the reader's
// annotations and the study's key images.

import { config, frameEndpoint, getJson, send, studyUrl } from "./config.js";

const frameKey = (sopUid, frame) => `${sopUid}:${frame}`;

export class Store {
  constructor() {
    this.facts = new Map();        // frame url -> promise of facts
    this.annotations = new Map();  // sop:frame -> [annotation]
    this.loadedStudies = new Map(); // study uid -> promise
    this.keyImages = [];
  }

  frameFacts(image) {
    if (!this.facts.has(image.url)) {
      const promise = getJson(frameEndpoint(image, "info.json"));
      promise.catch(() => this.facts.delete(image.url));
      this.facts.set(image.url, promise);
    }
    return this.facts.get(image.url);
  }

  loadAnnotations(studyUid) {
    // The simplified mode has no annotations to show (config.annotationsUrl "").
    if (!config.annotationsUrl) return Promise.resolve();
    if (!this.loadedStudies.has(studyUid)) {
      const url = studyUrl(config.annotationsUrl, studyUid);
      const promise = getJson(url).then((data) => {
        for (const annotation of data.annotations) this.remember(annotation);
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

  remember(annotation) {
    const key = frameKey(annotation.sop_instance_uid, annotation.frame);
    const list = (this.annotations.get(key) || []).filter((a) => a.id !== annotation.id);
    list.push(annotation);
    this.annotations.set(key, list);
  }

  async addAnnotation(image, kind, points) {
    const saved = await send("POST", frameEndpoint(image, "annotations/"), { kind, points });
    this.remember(saved);
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
