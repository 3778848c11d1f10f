// The camera wall: a canvas per camera, fed by binary Socket.IO thumbnails, with the
// latest detection boxes drawn over it, the time since its last detection and a badge
// while it sees faces; an alert list whose entries replay the moment they report; a
// click on a tile opens the camera live in the player.
import { LEAD_MS } from "./player.js";

const BOX_TTL_MS = 1500; // boxes fade out if no newer detection arrives
const ALERT_CAP = 50;
const ALERT_EVERY_MS = 5000; // one alert per camera and kind every few seconds
const FACE_BADGE_MS = 60000; // the face badge stays this long after the last face
export const COLOURS = { face: "#f43f5e", person: "#38bdf8", motion: "#facc15" };
const OUTAGES = new Set(["offline", "online"]);

// A camera's zones (points as fractions of the frame), outlined with their names.
export function drawZones(ctx, zones, width, height) {
  ctx.save();
  ctx.lineWidth = Math.max(1, width / 400);
  ctx.strokeStyle = "rgba(125, 211, 252, 0.8)";
  ctx.fillStyle = "rgba(125, 211, 252, 0.9)";
  ctx.font = `${Math.max(10, Math.round(width / 40))}px sans-serif`;
  ctx.setLineDash([6, 4]);
  for (const zone of zones || []) {
    ctx.beginPath();
    zone.points.forEach(([x, y], i) => (i ? ctx.lineTo : ctx.moveTo).call(ctx, x * width, y * height));
    ctx.closePath();
    ctx.stroke();
    const [x, y] = zone.points[0];
    ctx.fillText(zone.name, x * width + 4, y * height + Math.max(12, width / 36));
  }
  ctx.restore();
}

function ago(ms) {
  const seconds = Math.max(0, Math.round(ms / 1000));
  if (seconds < 60) return `${seconds} s ago`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)} min ago`;
  return `${Math.floor(seconds / 3600)} h ago`;
}

export class CameraWall {
  constructor(grid, alerts, player, latency, zoneFilter) {
    this.grid = grid;
    this.alerts = alerts;
    this.zoneFilter = zoneFilter;
    this.zoneNames = new Set();
    zoneFilter?.addEventListener("change", () => this.filterAlerts());
    this.player = player;
    this.latency = latency;
    this.tiles = new Map();
    this.lastAlert = new Map();
    setInterval(() => this.tick(), 1000);
  }

  cameras(list) {
    for (const camera of list) {
      this.tile(camera.camera).info = camera;
      for (const zone of camera.zones || []) this.addZoneName(zone.name);
    }
  }

  zonesOf(camera) {
    return this.tiles.get(camera)?.info?.zones || [];
  }

  addZoneName(name) {
    if (!this.zoneFilter || this.zoneNames.has(name)) return;
    this.zoneNames.add(name);
    const option = document.createElement("option");
    option.value = option.textContent = name;
    this.zoneFilter.append(option);
  }

  // Alerts in the chosen zone only ("" shows them all).
  filterAlerts() {
    const zone = this.zoneFilter?.value || "";
    for (const li of this.alerts.children) {
      li.hidden = Boolean(zone) && !li.dataset.zones.split(" ").includes(zone);
    }
  }

  tile(camera) {
    let tile = this.tiles.get(camera);
    if (tile) return tile;
    const figure = document.createElement("figure");
    figure.className = "tile";
    figure.dataset.camera = camera;
    const canvas = document.createElement("canvas");
    canvas.width = 320;
    canvas.height = 180;
    const caption = document.createElement("figcaption");
    const name = document.createElement("span");
    name.textContent = camera;
    const since = document.createElement("span");
    since.className = "since";
    since.textContent = " · no detection yet";
    caption.append(name, since);
    const badge = document.createElement("span");
    badge.className = "badge face";
    badge.textContent = "face";
    badge.hidden = true;
    figure.append(canvas, caption, badge);
    figure.addEventListener("click", () => this.player.open(camera, null, this.zonesOf(camera)));
    this.grid.append(figure);
    tile = { figure, canvas, caption, since, badge, image: null, boxes: [], frames: 0,
      info: null, lastDetection: null, lastFace: null };
    this.tiles.set(camera, tile);
    return tile;
  }

  async frame(frame) {
    const tile = this.tile(frame.camera);
    const blob = new Blob([frame.jpeg], { type: "image/jpeg" });
    let image;
    try {
      image = await createImageBitmap(blob);
    } catch {
      return; // a frame the browser cannot decode: keep the previous one
    }
    tile.image?.close?.();
    tile.image = image;
    tile.source = { width: frame.source_width, height: frame.source_height };
    tile.frames += 1;
    tile.figure.dataset.frames = String(tile.frames);
    tile.figure.dataset.seq = String(frame.seq);
    this.latency.observe(Date.now() - frame.ts / 1e6);
    this.draw(tile);
  }

  detection(det) {
    const tile = this.tile(det.camera);
    const now = Date.now();
    if (OUTAGES.has(det.kind)) {
      tile.figure.dataset.offline = det.kind === "offline" ? "1" : "0";
      this.alert(det, now);
      return;
    }
    tile.boxes = tile.boxes.filter((b) => b.kind !== det.kind);
    if (det.boxes.length) {
      tile.boxes.push({ kind: det.kind, boxes: det.boxes, at: now,
        width: det.width, height: det.height });
      tile.lastDetection = det.ts / 1e6;
      if (det.kind === "face") tile.lastFace = det.ts / 1e6;
      this.alert(det, now);
      this.label(tile);
    }
    tile.figure.dataset.detections = String((Number(tile.figure.dataset.detections) || 0) + 1);
    this.draw(tile);
  }

  alert(det, now) {
    const zones = det.zones || [];
    const key = `${det.camera}/${det.kind}/${zones.join(",")}`;
    if (now - (this.lastAlert.get(key) || 0) < ALERT_EVERY_MS) return;
    this.lastAlert.set(key, now);
    const li = document.createElement("li");
    li.className = `alert ${det.kind}`;
    const at = det.ts / 1e6;
    Object.assign(li.dataset, {
      camera: det.camera,
      kind: det.kind,
      ts: String(Math.floor(at)),
      zones: zones.join(" "),
    });
    li.title = "Replay the moment";
    const what = OUTAGES.has(det.kind) ? det.kind : `${det.kind} (${det.boxes.length})`;
    const where = zones.length ? ` in ${zones.join(", ")}` : "";
    li.textContent = `${new Date(at).toLocaleTimeString()} · ${det.camera}: ${what}${where}`;
    const chosen = this.zoneFilter?.value;
    li.hidden = Boolean(chosen) && !zones.includes(chosen);
    li.addEventListener("click", () =>
      this.player.open(det.camera, at - LEAD_MS, this.zonesOf(det.camera)),
    );
    this.alerts.prepend(li);
    while (this.alerts.children.length > ALERT_CAP) this.alerts.lastChild.remove();
  }

  draw(tile) {
    const { canvas } = tile;
    const ctx = canvas.getContext("2d");
    if (tile.image) {
      if (canvas.width !== tile.image.width || canvas.height !== tile.image.height) {
        canvas.width = tile.image.width;
        canvas.height = tile.image.height;
      }
      ctx.drawImage(tile.image, 0, 0);
    }
    drawZones(ctx, tile.info?.zones, canvas.width, canvas.height);
    const now = Date.now();
    tile.boxes = tile.boxes.filter((b) => now - b.at < BOX_TTL_MS);
    let drawn = 0;
    for (const set of tile.boxes) {
      // Boxes are in the captured frame's pixels; the tile is a scaled copy.
      const sx = canvas.width / (set.width || tile.source?.width || canvas.width);
      const sy = canvas.height / (set.height || tile.source?.height || canvas.height);
      ctx.lineWidth = 2;
      ctx.strokeStyle = COLOURS[set.kind] || COLOURS.motion;
      for (const [x, y, w, h] of set.boxes) {
        ctx.strokeRect(x * sx, y * sy, w * sx, h * sy);
        drawn += 1;
      }
    }
    tile.figure.dataset.boxes = String(drawn);
  }

  // Once a second: the time since each tile's last detection, and whether faces are recent.
  tick() {
    for (const tile of this.tiles.values()) this.label(tile);
  }

  label(tile) {
    const now = Date.now();
    if (tile.lastDetection !== null) {
      tile.since.textContent = ` · detection ${ago(now - tile.lastDetection)}`;
      tile.figure.dataset.lastDetection = String(Math.round(tile.lastDetection));
    }
    const faces = tile.lastFace !== null && now - tile.lastFace < FACE_BADGE_MS;
    tile.badge.hidden = !faces;
    tile.figure.dataset.face = faces ? "1" : "0";
  }
}
