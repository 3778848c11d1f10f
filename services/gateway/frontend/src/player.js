// The player: one camera, live or replayed from a moment, on a canvas with the detection
// boxes of the frame on screen, a timeline of what Kafka still holds, a snapshot of the
// frame on screen and a clip of the seconds before it. Every time is shown in local time.
import { readMjpeg } from "./mjpeg.js";
import { Timeline, localTime } from "./timeline.js";
import { COLOURS, drawZones } from "./wall.js";

export const LEAD_MS = 3000; // an alert replays from this long before its detection
export const CLIP_MS = 10000;
const BOX_HOLD_MS = 1000; // a box stays until its detector's next run (faces run every few frames)
const LIVE_MS = 2000; // frames younger than this are live
const DETECTIONS_AHEAD_MS = 60000; // a replay fetches its boxes a minute at a time
const WINDOW_EVERY_MS = 30000;
const iso = (ms) => new Date(Math.round(ms)).toISOString();

function say416(camera, body) {
  const requested = body.requested ? localTime(Date.parse(body.requested)) : "that moment";
  if (!body.earliest) return `Kafka holds no video of ${camera} at the moment.`;
  if (body.error?.includes("future")) return `${requested} has not happened yet.`;
  return (
    `The video of ${camera} from ${requested} is no longer kept: Kafka holds it ` +
    `from ${localTime(Date.parse(body.earliest))} on. Pick a later moment on the timeline.`
  );
}

export class Player {
  constructor(root) {
    this.root = root;
    this.canvas = root.querySelector("canvas");
    this.title = root.querySelector("[data-title]");
    this.clock = root.querySelector("[data-clock]");
    this.state = root.querySelector("[data-state]");
    this.message = root.querySelector("[data-message]");
    this.timeline = new Timeline(root.querySelector("[data-timeline]"), (ms) => this.play(ms));
    this.zones = []; // the camera's zones, from its status
    this.zoneFilter = root.querySelector("[data-zone]");
    this.zoneFilter?.addEventListener("change", () => this.refreshWindow());
    this.camera = null;
    this.abort = null;
    this.frame = null; // the frame on screen: {tsMs, seq}
    this.detections = []; // sorted by ts (ms)
    this.fetchedTo = null;
    this.fetching = false;
    this.windowTimer = null;
    root.querySelector("[data-live]").addEventListener("click", () => this.play(null));
    root.querySelector("[data-snapshot]").addEventListener("click", () => this.snapshot());
    root.querySelector("[data-clip]").addEventListener("click", () => this.clip());
    root.addEventListener("click", (e) => {
      if (e.target === root || e.target.dataset.close !== undefined) this.close();
    });
    setInterval(() => this.camera && this.timeline.draw(), 1000);
  }

  open(camera, fromMs = null, zones = []) {
    this.camera = camera;
    this.zones = zones;
    if (this.zoneFilter) {
      this.zoneFilter.replaceChildren(new Option("every zone", ""));
      for (const zone of zones) this.zoneFilter.append(new Option(zone.name, zone.name));
    }
    this.title.textContent = camera;
    this.root.dataset.camera = camera;
    this.root.hidden = false;
    this.frame = null; // snapshot and clip wait for this camera's first frame
    this.canvas.getContext("2d").clearRect(0, 0, this.canvas.width, this.canvas.height);
    this.timeline.setWindow(null);
    this.timeline.setMarks([]);
    this.refreshWindow();
    clearInterval(this.windowTimer);
    this.windowTimer = setInterval(() => this.refreshWindow(), WINDOW_EVERY_MS);
    this.play(fromMs);
  }

  close() {
    this.abort?.abort(); // ends the stream's request, and with it the gateway's Kafka read
    clearInterval(this.windowTimer);
    this.camera = null;
    this.root.hidden = true;
    delete this.root.dataset.camera;
  }

  // Live when `fromMs` is null, else a replay from that moment (then live).
  play(fromMs) {
    this.abort?.abort();
    const abort = (this.abort = new AbortController());
    const camera = encodeURIComponent(this.camera);
    const url = fromMs === null ? `/stream/${camera}` : `/stream/${camera}?from=${iso(fromMs)}`;
    this.say(null);
    this.detections = [];
    this.fetchedTo = null;
    Object.assign(this.root.dataset, {
      status: "",
      mode: fromMs === null ? "live" : "replay",
      requested: fromMs === null ? "" : String(Math.round(fromMs)),
      frames: "0",
      firstTs: "",
    });
    this.state.textContent = fromMs === null ? "Live" : `Replay from ${localTime(fromMs)}`;
    if (fromMs !== null) this.fetchDetections(fromMs);
    let drawing = false;
    let next = null;
    const show = async (frame) => {
      // One decode at a time; a frame arriving meanwhile replaces the one waiting.
      next = frame;
      if (drawing) return;
      drawing = true;
      while (next && !abort.signal.aborted) {
        const current = next;
        next = null;
        try {
          const bitmap = await createImageBitmap(new Blob([current.jpeg], { type: "image/jpeg" }));
          if (!abort.signal.aborted) this.draw(bitmap, current);
          bitmap.close?.();
        } catch {} // a frame the browser cannot decode: keep the previous one
      }
      drawing = false;
    };
    readMjpeg(url, abort.signal, show).then(
      () => abort.signal.aborted || this.say(`The stream of ${this.camera} ended.`),
      (error) => {
        if (abort.signal.aborted) return;
        this.root.dataset.mode = "error";
        this.root.dataset.status = String(error.status || "");
        this.state.textContent = fromMs === null ? "Live: unavailable" : "Replay: unavailable";
        if (error.status === 416) this.say(say416(this.camera, error.body));
        else if (error.status === 429) this.say("Too many replays on this gateway right now; try again in a few seconds.");
        else if (error.status === 401) this.say("Your session has ended: open a new sign-in link.");
        else if (error.status === 403) this.say("Recorded video needs an operator's sign-in link.");
        else this.say(`The stream of ${this.camera} stopped: ${error.message}`);
      },
    );
  }

  draw(bitmap, frame) {
    const { canvas } = this;
    if (canvas.width !== bitmap.width || canvas.height !== bitmap.height) {
      canvas.width = bitmap.width;
      canvas.height = bitmap.height;
    }
    const ctx = canvas.getContext("2d");
    ctx.drawImage(bitmap, 0, 0);
    drawZones(ctx, this.zones, canvas.width, canvas.height);
    const boxes = this.boxesAt(frame.tsMs);
    ctx.lineWidth = Math.max(2, canvas.width / 320);
    for (const det of boxes) {
      ctx.strokeStyle = COLOURS[det.kind] || COLOURS.motion;
      const sx = canvas.width / (det.width || canvas.width);
      const sy = canvas.height / (det.height || canvas.height);
      for (const [x, y, w, h] of det.boxes) ctx.strokeRect(x * sx, y * sy, w * sx, h * sy);
    }
    const age = Date.now() - frame.tsMs;
    const data = this.root.dataset;
    if (!data.firstTs) data.firstTs = String(Math.floor(frame.tsMs));
    Object.assign(data, {
      ts: String(Math.floor(frame.tsMs)),
      seq: String(frame.seq),
      age: String(Math.round(age)),
      frames: String(Number(data.frames) + 1),
      boxes: String(boxes.reduce((n, det) => n + det.boxes.length, 0)),
      faces: String(boxes.filter((det) => det.kind === "face").length),
    });
    if (data.mode === "replay" && age < LIVE_MS) {
      data.mode = "live";
      this.state.textContent = "Live";
    }
    this.frame = frame;
    this.clock.textContent = localTime(frame.tsMs);
    this.timeline.setPlayhead(frame.tsMs);
    // A replay fetches its boxes ahead of the frames; live ones come with the socket.
    const behind = this.fetchedTo !== null && this.fetchedTo < Date.now() - LIVE_MS;
    if (data.mode === "replay" && behind && !this.fetching && frame.tsMs > this.fetchedTo - 10000) {
      this.fetchDetections(this.fetchedTo);
    }
  }

  // The newest detection of each kind at or before `tsMs`, if recent enough to still hold.
  boxesAt(tsMs) {
    const latest = new Map();
    for (const det of this.detections) {
      const ms = det.ts / 1e6;
      if (ms > tsMs + 1) break;
      if (tsMs - ms <= BOX_HOLD_MS) latest.set(det.kind, det);
    }
    return [...latest.values()].filter((det) => det.boxes.length);
  }

  // Live detections from the dashboard's socket: boxes for live frames, marks on the timeline.
  detection(det) {
    if (det.camera !== this.camera) return;
    this.timeline.addMark(det);
    this.merge([det]);
    if (this.root.dataset.mode === "live") {
      const horizon = det.ts - 10 * BOX_HOLD_MS * 1e6;
      while (this.detections.length && this.detections[0].ts < horizon) this.detections.shift();
    }
  }

  async fetchDetections(fromMs) {
    const to = Math.min(Date.now(), fromMs + DETECTIONS_AHEAD_MS);
    const camera = this.camera;
    this.fetching = true;
    this.fetchedTo = to;
    try {
      const path = `/api/timeline/${encodeURIComponent(camera)}?from=${iso(fromMs - BOX_HOLD_MS)}&to=${iso(to)}`;
      const answer = await this.api(path);
      if (answer && camera === this.camera) this.merge(answer.detections);
    } finally {
      this.fetching = false;
    }
  }

  merge(detections) {
    const known = new Set(this.detections.map((d) => `${d.kind}/${d.seq}`));
    const added = detections.filter((d) => !known.has(`${d.kind}/${d.seq}`));
    if (added.length) this.detections = [...this.detections, ...added].sort((a, b) => a.ts - b.ts);
  }

  async refreshWindow() {
    const camera = this.camera;
    const step = this.timeline.stepMs;
    const zone = this.zoneFilter?.value;
    const only = zone ? `&zone=${encodeURIComponent(zone)}` : "";
    const answer = await this.api(`/api/timeline/${encodeURIComponent(camera)}?step=${step}${only}`);
    if (!answer || camera !== this.camera) return;
    this.timeline.setWindow(answer.earliest_ms);
    this.timeline.setMarks(answer.marks);
  }

  async api(path) {
    try {
      const response = await fetch(path, { cache: "no-store" });
      const body = await response.json();
      if (response.ok) return body;
      this.say(response.status === 416 ? say416(this.camera, body) : body.error);
    } catch {} // the next refresh tries again
    return null;
  }

  // The frame on screen, as the gateway finds it again in Kafka by its capture time.
  async snapshot() {
    if (!this.frame) return;
    const { tsMs } = this.frame;
    const response = await fetch(`/snapshot/${encodeURIComponent(this.camera)}.jpg?at=${iso(tsMs)}`);
    if (!response.ok) {
      const body = await response.json().catch(() => ({}));
      this.say(response.status === 416 ? say416(this.camera, body) : body.error || response.statusText);
      return;
    }
    const stamp = new Date(tsMs).toISOString().replace(/[:.]/g, "-");
    save(await response.blob(), `${this.camera}_${stamp}.jpg`);
  }

  // The ten seconds up to the frame on screen, as an AVI file the browser downloads
  // straight to disk (a link, not fetch: a clip can be large).
  clip() {
    if (!this.frame) return;
    const to = this.frame.tsMs;
    const from = Math.max(to - CLIP_MS, this.timeline.start ?? to - CLIP_MS);
    if (to - from < 1000) {
      this.say("Kafka does not hold enough video before this frame for a clip yet.");
      return;
    }
    const link = document.createElement("a");
    link.href = `/clip/${encodeURIComponent(this.camera)}?from=${iso(from)}&to=${iso(to)}`;
    link.download = "";
    link.click();
  }

  say(text) {
    this.message.hidden = !text;
    this.message.textContent = text || "";
  }
}

function save(blob, name) {
  const link = document.createElement("a");
  link.href = URL.createObjectURL(blob);
  link.download = name;
  link.click();
  setTimeout(() => URL.revokeObjectURL(link.href), 10000);
}
