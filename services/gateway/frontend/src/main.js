// The live dashboard: one Socket.IO connection carries playback events, per-partition
// QoE aggregates, detections and the camera wall's thumbnails.
import { io } from "socket.io-client";
import uPlot from "uplot";
import "uplot/dist/uPlot.min.css";
import "./style.css";
import { QoeBoard } from "./qoe.js";
import { CameraWall } from "./wall.js";
import { Player } from "./player.js";
import { EventFeed } from "./feed.js";
import { LatencyMeter } from "./latency.js";

const $ = (id) => document.getElementById(id);

const status = $("status");
const eventLatency = new LatencyMeter($("event-latency"));
const frameLatency = new LatencyMeter($("frame-latency"));
const feed = new EventFeed($("events"), 100);
const qoe = new QoeBoard(document, uPlot);
const player = new Player($("player"));
const wall = new CameraWall($("wall"), $("alerts"), player, frameLatency, $("alert-zone"));

// WebSocket first: long-polling needs sticky sessions across replicas, and a wall of
// thumbnails is far cheaper over one socket.
const socket = io({ transports: ["websocket", "polling"], reconnectionDelayMax: 5000 });

function setStatus(state, text) {
  status.dataset.state = state;
  status.textContent = text;
}

socket.on("connect", () => {
  setStatus("connected", "Connected");
  // After a reconnect the server has forgotten this client: subscribe again. Events,
  // aggregates and detections come in one message four times a second.
  socket.emit("options", { batch: true });
  socket.emit("wall", { on: true });
});
// The gateway is up but cannot reach Kafka: it keeps the last frames and figures on
// screen and resumes by itself once Kafka answers again.
socket.on("status", ({ kafka }) => {
  if (!socket.connected) return;
  if (kafka) setStatus("connected", "Connected");
  else setStatus("reconnecting", "Reconnecting to Kafka…");
});
socket.on("disconnect", (reason) => {
  setStatus("disconnected", `Disconnected (${reason})`);
  // A gateway that shuts down (a deploy, a scale-down) disconnects its clients on purpose;
  // Socket.IO only retries on its own after network errors, so come back by ourselves:
  // the load balancer sends the new connection to a replica that is up.
  if (reason === "io server disconnect") setTimeout(() => socket.connect(), 1000);
});
socket.io.on("reconnect_attempt", (n) => setStatus("reconnecting", `Reconnecting (attempt ${n})`));
socket.on("connect_error", () => setStatus("reconnecting", "Reconnecting"));

function onEvent(event) {
  feed.add(event);
  eventLatency.observe(Date.now() - Date.parse(event.ts));
}
function onDetection(detection) {
  wall.detection(detection);
  player.detection(detection);
}
socket.on("new_event", onEvent);
socket.on("qoe", (snapshot) => qoe.update(snapshot));
socket.on("detection", onDetection);
// What the gateway sends one by one, four times a second in one message: the events,
// each partition's aggregates at its last tick, and the detections (of every camera;
// a sign-in limited to some cameras gets those one by one).
socket.on("batch", ({ events, qoe: snapshots = [], detections = [] }) => {
  events.forEach(onEvent);
  snapshots.forEach((snapshot) => qoe.update(snapshot));
  detections.forEach(onDetection);
});
socket.on("qoe_released", ({ partition, owner }) => qoe.release(partition, owner));
socket.on("cameras", (cameras) => wall.cameras(cameras));
socket.on("wall_frame", (frame) => wall.frame(frame));

setInterval(() => qoe.render(), 1000);

// For end-to-end tests and the curious: the live state, read-only.
window.dashboard = { socket, qoe, wall, player, feed, eventLatency, frameLatency };
