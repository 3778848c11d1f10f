// The camera wall: a canvas per camera, fed by binary Socket.IO thumbnails, with the
// latest detection boxes drawn over it, an alert list, and a click that opens the full
// MJPEG stream.
const BOX_TTL_MS = 1500; // boxes fade out if no newer detection arrives
const ALERT_CAP = 50;
const ALERT_EVERY_MS = 5000; // one alert per camera and kind every few seconds

export class CameraWall {
  constructor(grid, alerts, player, latency) {
    this.grid = grid;
    this.alerts = alerts;
    this.player = player;
    this.latency = latency;
    this.tiles = new Map();
    this.lastAlert = new Map();
    player.addEventListener("click", (e) => {
      if (e.target === player || e.target.dataset.close !== undefined) this.closePlayer();
    });
  }

  cameras(list) {
    for (const camera of list) this.tile(camera.camera).info = camera;
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
    caption.textContent = camera;
    figure.append(canvas, caption);
    figure.addEventListener("click", () => this.openPlayer(camera));
    this.grid.append(figure);
    tile = { figure, canvas, caption, image: null, boxes: [], frames: 0, info: null };
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
    tile.boxes = tile.boxes.filter((b) => b.kind !== det.kind);
    if (det.boxes.length) {
      tile.boxes.push({ kind: det.kind, boxes: det.boxes, at: now,
        width: det.width, height: det.height });
      this.alert(det, now);
    }
    tile.figure.dataset.detections = String((Number(tile.figure.dataset.detections) || 0) + 1);
    this.draw(tile);
  }

  alert(det, now) {
    const key = `${det.camera}/${det.kind}`;
    if (now - (this.lastAlert.get(key) || 0) < ALERT_EVERY_MS) return;
    this.lastAlert.set(key, now);
    const li = document.createElement("li");
    li.className = `alert ${det.kind}`;
    const when = new Date(det.ts / 1e6).toLocaleTimeString();
    li.textContent = `${when} · ${det.camera}: ${det.kind} (${det.boxes.length})`;
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
    const now = Date.now();
    tile.boxes = tile.boxes.filter((b) => now - b.at < BOX_TTL_MS);
    let drawn = 0;
    for (const set of tile.boxes) {
      // Boxes are in the captured frame's pixels; the tile is a scaled copy.
      const sx = canvas.width / (set.width || tile.source?.width || canvas.width);
      const sy = canvas.height / (set.height || tile.source?.height || canvas.height);
      ctx.lineWidth = 2;
      ctx.strokeStyle = set.kind === "face" ? "#f43f5e" : "#facc15";
      for (const [x, y, w, h] of set.boxes) {
        ctx.strokeRect(x * sx, y * sy, w * sx, h * sy);
        drawn += 1;
      }
    }
    tile.figure.dataset.boxes = String(drawn);
  }

  openPlayer(camera) {
    const img = this.player.querySelector("img");
    img.src = `/stream/${encodeURIComponent(camera)}`;
    img.alt = camera;
    this.player.querySelector("[data-title]").textContent = camera;
    this.player.hidden = false;
  }

  closePlayer() {
    const img = this.player.querySelector("img");
    img.removeAttribute("src"); // ends the MJPEG request
    this.player.hidden = true;
  }
}
