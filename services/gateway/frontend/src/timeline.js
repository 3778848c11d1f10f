// A camera's timeline: the retention window Kafka still holds (oldest frame to now), its
// detections as marks, where the player is, and the local time under the pointer. A
// click, or a drag released, asks the player to replay from that moment.
const COLOURS = { face: "#f43f5e", person: "#38bdf8", motion: "rgba(250, 204, 21, 0.35)" };
const GAP = "rgba(148, 163, 184, 0.45)"; // the camera was offline: no video there

export const localTime = (ms) => new Date(ms).toLocaleTimeString();

export class Timeline {
  constructor(element, onSeek) {
    this.element = element;
    this.canvas = element.querySelector("canvas");
    this.cursor = element.querySelector("[data-cursor]");
    this.startLabel = element.querySelector("[data-start-time]");
    this.endLabel = element.querySelector("[data-end-time]");
    this.onSeek = onSeek;
    this.start = null; // oldest moment held (ms); null: nothing known yet
    this.marks = [];
    this.playhead = null;
    this.dragging = false;
    element.addEventListener("pointerdown", (e) => {
      if (this.start === null) return;
      this.dragging = true;
      element.setPointerCapture(e.pointerId);
      this.hover(e);
    });
    element.addEventListener("pointermove", (e) => this.hover(e));
    element.addEventListener("pointerup", (e) => {
      if (!this.dragging) return;
      this.dragging = false;
      const moment = this.timeAt(e.clientX);
      this.playhead = moment;
      this.draw();
      this.onSeek(moment);
    });
    element.addEventListener("pointerleave", () => {
      if (!this.dragging) this.cursor.hidden = true;
    });
  }

  get end() {
    return Date.now();
  }

  setWindow(startMs) {
    this.start = startMs;
    if (startMs === null) delete this.element.dataset.start;
    else this.element.dataset.start = String(startMs);
    this.draw();
  }

  // Buckets of detections from the gateway: [[start ms, kind, count], ...].
  setMarks(buckets) {
    this.marks = buckets.map(([ms, kind]) => ({ ms, kind }));
    this.element.dataset.marks = String(this.marks.length);
    this.element.dataset.faces = String(this.marks.filter((m) => m.kind === "face").length);
    this.element.dataset.gaps = String(this.gaps().length);
    this.draw();
  }

  // The bucket length that gives about one mark per pixel of the current window.
  get stepMs() {
    const span = this.start === null ? 600000 : this.end - this.start;
    return Math.max(100, Math.ceil(span / (this.canvas.clientWidth || 600)));
  }

  addMark(detection) {
    this.marks.push({ ms: detection.ts / 1e6, kind: detection.kind });
    this.element.dataset.marks = String(this.marks.length);
  }

  setPlayhead(ms) {
    if (!this.dragging) this.playhead = ms;
  }

  // Spans the camera was offline: from each offline mark to the next online one (or now).
  gaps() {
    const spans = [];
    let from = null;
    for (const mark of [...this.marks].sort((a, b) => a.ms - b.ms)) {
      if (mark.kind === "offline" && from === null) from = mark.ms;
      if (mark.kind === "online" && from !== null) {
        spans.push([from, mark.ms]);
        from = null;
      }
    }
    if (from !== null) spans.push([from, this.end]);
    return spans;
  }

  timeAt(clientX) {
    const box = this.canvas.getBoundingClientRect();
    const fraction = Math.min(1, Math.max(0, (clientX - box.left) / box.width));
    return this.start + fraction * (this.end - this.start);
  }

  xOf(ms, width) {
    return ((ms - this.start) / (this.end - this.start)) * width;
  }

  hover(e) {
    if (this.start === null) return;
    const moment = this.timeAt(e.clientX);
    const box = this.canvas.getBoundingClientRect();
    this.cursor.hidden = false;
    this.cursor.style.left = `${Math.min(box.width, Math.max(0, e.clientX - box.left))}px`;
    this.cursor.textContent = localTime(moment);
    this.element.dataset.cursorMs = String(Math.floor(moment));
    if (this.dragging) {
      this.playhead = moment;
      this.draw();
    }
  }

  draw() {
    const { canvas } = this;
    const width = canvas.clientWidth || 600;
    const height = canvas.clientHeight || 36;
    if (canvas.width !== width || canvas.height !== height) {
      canvas.width = width;
      canvas.height = height;
    }
    const ctx = canvas.getContext("2d");
    ctx.clearRect(0, 0, width, height);
    ctx.fillStyle = "#11141a";
    ctx.fillRect(0, 0, width, height);
    this.element.dataset.end = String(this.end);
    if (this.start === null) return;
    this.startLabel.textContent = localTime(this.start);
    this.endLabel.textContent = `${localTime(this.end)} (now)`;
    ctx.fillStyle = GAP;
    for (const [from, to] of this.gaps()) {
      const x = Math.round(this.xOf(Math.max(from, this.start), width));
      ctx.fillRect(x, 0, Math.max(2, Math.round(this.xOf(to, width)) - x), height);
    }
    // Motion first, faint; people and faces over it, taller, so they stay visible.
    for (const kind of ["motion", "person", "face"]) {
      ctx.fillStyle = COLOURS[kind];
      const top = kind === "motion" ? height / 2 : 0;
      for (const mark of this.marks) {
        if (mark.kind !== kind || mark.ms < this.start) continue;
        ctx.fillRect(Math.round(this.xOf(mark.ms, width)), top, 2, height - top);
      }
    }
    if (this.playhead !== null) {
      const x = Math.round(this.xOf(this.playhead, width));
      ctx.fillStyle = "#e6e8ee";
      ctx.fillRect(Math.min(width - 3, Math.max(0, x - 1)), 0, 3, height);
      this.element.dataset.playhead = String(Math.round(this.playhead));
    }
  }
}
