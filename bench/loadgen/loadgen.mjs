// Load generators for the benchmarks: many MJPEG viewers or Socket.IO dashboards in one
// Node process, cheap enough per client that the server, not this process, is measured.
//
//   node loadgen.mjs mjpeg    '{"targets": [URL, ...], "viewers": N, "seconds": S}'
//   node loadgen.mjs socketio '{"urls": [URL, ...], "clients": N, "seconds": S}'
//
// Viewers and clients are spread over the URLs in turn. Optional: "warmup" (seconds
// after everyone is connected), "ramp_per_second" (new connections per second),
// "drain_seconds" (Socket.IO: how long to wait for the window's late events), "batch"
// (Socket.IO: ask for batches, as the dashboard's page does), "deflate" (Socket.IO:
// offer permessage-deflate in the WebSocket handshake, as Chromium does; default true).
//
// Progress goes to stderr. stdout carries JSON lines: {"phase":"measuring"} when every
// client is connected and warmed up (the caller starts its own measurements then),
// {"phase":"window-closed"} when the measured window ends (Socket.IO clients then wait
// for the window's late events), and one {"phase":"done", ...} line with the results. Latency is the time a frame or event
// is fully received minus its capture or event time: one machine, one clock.

import net from "node:net";
import { performance } from "node:perf_hooks";
import { io } from "socket.io-client";

const nowMs = () => performance.timeOrigin + performance.now();
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

function emit(line) {
  process.stdout.write(`${JSON.stringify(line)}\n`);
}

function log(message) {
  process.stderr.write(`loadgen: ${message}\n`);
}

/** Latencies in ms: exact percentiles and 201 points of the CDF, from all samples. */
function distribution(values) {
  const sorted = Float64Array.from(values).sort();
  const n = sorted.length;
  const at = (q) => (n ? sorted[Math.min(n - 1, Math.max(0, Math.ceil(q * n) - 1))] : null);
  const cdf = [];
  if (n) {
    for (let i = 0; i <= 200; i += 1) cdf.push(at(i / 200));
  }
  return { count: n, p50: at(0.5), p90: at(0.9), p99: at(0.99), p999: at(0.999), max: at(1), cdf };
}

/** This process's CPU (user + system, all its threads) between two marks, % of one core. */
function cpuMeter() {
  const start = process.cpuUsage();
  const t0 = nowMs();
  return () => {
    const used = process.cpuUsage(start);
    return (100 * (used.user + used.system)) / 1000 / Math.max(1, nowMs() - t0);
  };
}

/** Open `count` connections at `perSecond`, calling open(i) for each. */
async function ramp(count, perSecond, open) {
  const batch = Math.max(1, Math.round(perSecond / 50));
  for (let i = 0; i < count; i += batch) {
    for (let j = i; j < Math.min(count, i + batch); j += 1) open(j);
    await sleep(20);
  }
}

async function waitFor(predicate, timeoutMs) {
  const deadline = nowMs() + timeoutMs;
  while (!predicate() && nowMs() < deadline) await sleep(50);
  return predicate();
}

// --- MJPEG ----------------------------------------------------------------------------

const HEAD_END = Buffer.from("\r\n\r\n");

/**
 * One viewer: GET the stream over HTTP/1.0 (the body is the raw multipart stream) and
 * parse parts as they arrive, without copying JPEG bytes: only part headers are kept.
 */
class MjpegViewer {
  constructor(target, window, onError) {
    const url = new URL(target);
    const path = url.pathname + url.search;
    this.path = target;
    this.window = window;
    this.status = 0;
    this.frames = 0; // received inside the measured window
    this.bytes = 0;
    this.firstSeq = null;
    this.lastSeq = null;
    this.connected = false;
    this.gotFrame = false;
    this.ended = false;
    this.latencies = [];
    this.inHeaders = true; // the HTTP response head, then each part's head
    this.pending = null;
    this.remaining = 0;
    this.partTs = 0;
    this.partSeq = 0;
    this.socket = net.connect(Number(url.port), url.hostname);
    this.socket.setNoDelay(true);
    this.socket.on("connect", () => {
      this.connected = true;
      this.socket.write(`GET ${path} HTTP/1.0\r\nHost: bench\r\n\r\n`);
    });
    this.socket.on("data", (chunk) => this.onData(chunk));
    this.socket.on("error", (err) => onError(err.code || String(err)));
    this.socket.on("close", () => {
      this.ended = true;
    });
  }

  onData(chunk) {
    let data = chunk;
    while (data.length) {
      if (this.remaining > 0) {
        const take = Math.min(this.remaining, data.length);
        this.remaining -= take;
        if (this.window.open) this.bytes += take;
        data = data.subarray(take);
        if (this.remaining === 0) this.onPart();
        continue;
      }
      const buf = this.pending ? Buffer.concat([this.pending, data]) : data;
      const end = buf.indexOf(HEAD_END);
      if (end < 0) {
        this.pending = Buffer.from(buf);
        return;
      }
      this.pending = null;
      const head = buf.toString("latin1", 0, end);
      data = buf.subarray(end + 4);
      if (this.status === 0) {
        this.status = Number(head.slice(9, 12));
        if (this.status !== 200) {
          this.socket.destroy();
          return;
        }
        continue;
      }
      // Blank lines between parts (the baseline ends each part with two CRLFs) are no part.
      if (!head.trim()) continue;
      const length = /Content-Length: *(\d+)/i.exec(head);
      const ts = /X-Frame-Timestamp: *(\d+)/i.exec(head);
      const seq = /X-Frame-Seq: *(\d+)/i.exec(head);
      this.remaining = length ? Number(length[1]) : 0;
      this.partTs = ts ? Number(ts[1]) / 1e6 : 0;
      this.partSeq = seq ? Number(seq[1]) : null;
      if (this.window.open) this.bytes += end + 4;
      if (this.remaining === 0) this.onPart();
    }
  }

  onPart() {
    this.gotFrame = true;
    if (!this.window.open) return;
    this.frames += 1;
    if (this.partTs) this.latencies.push(nowMs() - this.partTs);
    if (this.partSeq !== null) {
      if (this.firstSeq === null) this.firstSeq = this.partSeq;
      this.lastSeq = this.partSeq;
    }
  }
}

async function mjpeg(config) {
  const { targets, viewers, seconds, warmup = 2 } = config;
  const perSecond = config.ramp_per_second ?? 500;
  const window = { open: false };
  const errors = {};
  const onError = (code) => {
    errors[code] = (errors[code] || 0) + 1;
  };
  const all = [];
  await ramp(viewers, perSecond, (i) => {
    all.push(new MjpegViewer(targets[i % targets.length], window, onError));
  });
  // Clients a sync server never answers (the baseline) wait in its backlog: don't wait
  // for them longer than the ramp-up needs.
  const rampSeconds = viewers / perSecond;
  log(`mjpeg: ${viewers} viewers opened, waiting for their first frames`);
  const allServed = await waitFor(
    () => all.every((v) => v.gotFrame),
    1000 * (config.connect_timeout ?? 10 + rampSeconds),
  );
  const served = all.filter((v) => v.gotFrame).length;
  log(`mjpeg: ${served} of ${viewers} got a frame${allServed ? "" : " (gave up waiting)"}`);
  await sleep(1000 * warmup);
  const cpu = cpuMeter();
  const start = nowMs();
  window.open = true;
  emit({ phase: "measuring", at: start / 1000 });
  await sleep(1000 * seconds);
  window.open = false;
  const elapsed = (nowMs() - start) / 1000;
  const cpuPercent = cpu();
  emit({ phase: "window-closed" });
  for (const v of all) v.socket.destroy();
  const latencies = [];
  const perTarget = {};
  let frames = 0;
  let bytes = 0;
  for (const v of all) {
    for (const l of v.latencies) latencies.push(l);
    frames += v.frames;
    bytes += v.bytes;
    const p = (perTarget[v.path] ??= { viewers: 0, served: 0, frames: 0, firstSeq: null, lastSeq: null });
    p.viewers += 1;
    if (v.frames > 0) p.served += 1;
    p.frames += v.frames;
    if (v.firstSeq !== null) {
      p.firstSeq = p.firstSeq === null ? v.firstSeq : Math.min(p.firstSeq, v.firstSeq);
      p.lastSeq = p.lastSeq === null ? v.lastSeq : Math.max(p.lastSeq, v.lastSeq);
    }
  }
  // The frames each viewer could have had: the span of sequence numbers any viewer of
  // the same camera saw in the window.
  let expected = 0;
  for (const p of Object.values(perTarget)) {
    if (p.firstSeq !== null) expected += p.viewers * (p.lastSeq - p.firstSeq + 1);
  }
  const perViewer = all.map((v) => v.frames / elapsed);
  emit({
    phase: "done",
    viewers,
    connected: all.filter((v) => v.connected).length,
    served: all.filter((v) => v.frames > 0).length,
    per_target: Object.fromEntries(
      Object.entries(perTarget).map(([k, p]) => [k, { viewers: p.viewers, served: p.served, frames: p.frames }]),
    ),
    seconds: elapsed,
    frames,
    expected_frames: expected,
    delivered: expected ? frames / expected : null,
    fps_per_viewer: frames / viewers / elapsed,
    fps_min: Math.min(...perViewer),
    bytes_per_second: bytes / elapsed,
    errors,
    latency_ms: distribution(latencies),
    cpu_percent: cpuPercent,
    rss_bytes: process.memoryUsage().rss,
  });
}

// --- Socket.IO ------------------------------------------------------------------------

/** An event's `ts` (ISO-8601 UTC, up to 9 fractional digits) in ms since the epoch. */
function eventTimeMs(ts) {
  const dot = ts.indexOf(".");
  if (dot < 0) return Date.parse(ts);
  const whole = Date.parse(`${ts.slice(0, dot)}Z`);
  const fraction = ts.slice(dot + 1).replace("Z", "");
  return whole + Number(`0.${fraction}`) * 1000;
}

async function socketio(config) {
  const { urls, clients, seconds, warmup = 2 } = config;
  const perSecond = config.ramp_per_second ?? 200;
  const drain = config.drain_seconds ?? 10;
  const window = { start: Infinity, end: Infinity };
  const errors = {};
  const ids = new Set();
  const latencies = [];
  const sockets = [];
  let messages = 0;
  let connected = 0;
  let compressed = 0;
  let disconnected = 0;
  let lastInWindow = 0;
  const received = new Array(clients).fill(0);
  await ramp(clients, perSecond, (i) => {
    const socket = io(urls[i % urls.length], {
      transports: ["websocket"],
      forceNew: true,
      reconnection: false,
      timeout: 60000,
      // A browser offers "permessage-deflate; client_max_window_bits"; so does this, and
      // it compresses what it sends of 1 KiB or more, as socket.io-client does in Node.
      perMessageDeflate: config.deflate === false ? false : { threshold: 1024 },
    });
    socket.on("connect", () => {
      connected += 1;
      // What the server accepted of the offer (ws's negotiated extensions).
      if (socket.io.engine?.transport?.ws?.extensions) compressed += 1;
      // As the dashboard's page does: events four times a second in one message.
      if (config.batch) socket.emit("options", { batch: true });
    });
    socket.on("connect_error", (err) => {
      errors[err.message] = (errors[err.message] || 0) + 1;
    });
    socket.on("disconnect", (reason) => {
      disconnected += 1;
      if (nowMs() < window.end) errors[`disconnect: ${reason}`] = (errors[`disconnect: ${reason}`] || 0) + 1;
    });
    socket.onAny(() => {
      messages += 1;
    });
    const onEvent = (event) => {
      const now = nowMs();
      const at = eventTimeMs(event.ts);
      if (at >= window.start && at < window.end) {
        received[i] += 1;
        ids.add(event.event_id);
        latencies.push(now - at);
        lastInWindow = now;
      }
    };
    socket.on("new_event", onEvent);
    socket.on("batch", ({ events }) => events.forEach(onEvent));
    sockets.push(socket);
  });
  log(`socketio: ${clients} clients opened, waiting for them to connect`);
  await waitFor(() => connected + Object.values(errors).reduce((a, b) => a + b, 0) >= clients, 60000);
  log(`socketio: ${connected} of ${clients} connected`);
  await sleep(1000 * warmup);
  const cpu = cpuMeter();
  window.start = nowMs();
  window.end = window.start + 1000 * seconds;
  const messagesBefore = messages;
  emit({ phase: "measuring", at: window.start / 1000 });
  await sleep(1000 * seconds);
  const cpuPercent = cpu();
  const messagesPerSecond = (messages - messagesBefore) / seconds;
  emit({ phase: "window-closed" });
  // Events of the window still on their way: wait until they stop coming (or `drain`).
  const drainEnd = nowMs() + 1000 * drain;
  lastInWindow = nowMs();
  const quiet = Math.min(2000, 1000 * drain);
  while (nowMs() < drainEnd && nowMs() - lastInWindow < quiet) await sleep(100);
  const drained = (nowMs() - window.end) / 1000;
  for (const s of sockets) s.close();
  const expected = ids.size * clients;
  const got = received.reduce((a, b) => a + b, 0);
  emit({
    phase: "done",
    clients,
    connected,
    compressed,
    disconnected_early: Object.entries(errors)
      .filter(([k]) => k.startsWith("disconnect"))
      .reduce((a, [, v]) => a + v, 0),
    seconds,
    drained_seconds: drained,
    events_in_window: ids.size,
    received: got,
    expected,
    delivered: expected ? got / expected : null,
    messages_per_second: messagesPerSecond,
    errors,
    latency_ms: distribution(latencies),
    cpu_percent: cpuPercent,
    rss_bytes: process.memoryUsage().rss,
  });
}

const [mode, raw] = process.argv.slice(2);
const modes = { mjpeg, socketio };
if (!modes[mode] || !raw) {
  log("usage: node loadgen.mjs mjpeg|socketio '<json config>'");
  process.exit(2);
}
modes[mode](JSON.parse(raw)).then(
  () => process.exit(0),
  (err) => {
    log(err.stack || String(err));
    process.exit(1);
  },
);
