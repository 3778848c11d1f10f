// QoE aggregates: every replica emits one snapshot per owned partition per second;
// snapshots are counts and sums, so the totals are their sum (the same arithmetic as
// rts_gateway.qoe.merge). A partition's counts run on when it moves to another replica
// (the new owner restores its checkpoint), so rates come from consecutive snapshots of a
// partition whoever sent them; a new `since` means its counting started over, and the
// first snapshot after that only sets a new baseline.
const EVENT_TYPES = ["play", "pause", "stop", "seek", "buffer_start", "buffer_end"];
const DEVICES = ["web", "tv", "mobile"];
const COLOURS = {
  play: "#22c55e", pause: "#facc15", stop: "#ef4444", seek: "#3b82f6",
  buffer_start: "#a855f7", buffer_end: "#6366f1",
};
const HISTORY = 300; // seconds of chart history

function percentile(sorted, q) {
  if (!sorted.length) return null;
  return sorted[Math.max(0, Math.ceil(sorted.length * q) - 1)];
}

function emptyTotals() {
  return {
    events: Object.fromEntries(EVENT_TYPES.map((t) => [t, 0])),
    starts: 0, startup_failures: 0, rebuffer_ms: 0, watched_ms: 0,
    switches_up: 0, switches_down: 0,
    playing: 0, paused: 0, buffering: 0, seeking: 0, bitrate_sum_kbps: 0,
    startups: [],
  };
}

function addDevice(total, d) {
  for (const t of EVENT_TYPES) total.events[t] += d.events[t] || 0;
  total.starts += d.starts;
  total.startup_failures += d.startup_failures;
  total.rebuffer_ms += d.rebuffer_ms;
  total.watched_ms += d.watched_ms;
  total.switches_up += d.bitrate_switches.up;
  total.switches_down += d.bitrate_switches.down;
  total.playing += d.playing;
  total.paused += d.paused;
  total.buffering += d.buffering;
  total.seeking += d.seeking;
  total.bitrate_sum_kbps += d.bitrate_sum_kbps;
  total.startups.push(...d.startup_ms_window);
}

const sumEvents = (t) => EVENT_TYPES.reduce((n, k) => n + t.events[k], 0);

export class QoeBoard {
  constructor(doc, uPlot) {
    this.doc = doc;
    this.uPlot = uPlot;
    this.partitions = new Map(); // partition -> {current, rateFrom}
    this.history = { t: [], byType: EVENT_TYPES.map(() => []), playing: [], paused: [],
      buffering: [], p50: [], p95: [], rebuffer: [], bitrate: [] };
    this.charts = null;
    this.totals = emptyTotals();
    this.rates = null;
  }

  update(snapshot) {
    const entry = this.partitions.get(snapshot.partition);
    const sameCount = entry && entry.current.since === snapshot.since;
    this.partitions.set(snapshot.partition, {
      current: snapshot,
      rateFrom: sameCount ? entry.current : null,
    });
  }

  release(partition, owner) {
    const entry = this.partitions.get(partition);
    if (entry && entry.current.owner === owner) this.partitions.delete(partition);
  }

  merge() {
    const total = emptyTotals();
    const perDevice = Object.fromEntries(DEVICES.map((d) => [d, emptyTotals()]));
    const titles = new Map();
    for (const { current } of this.partitions.values()) {
      for (const device of DEVICES) {
        const d = current.devices[device];
        if (!d) continue;
        addDevice(total, d);
        addDevice(perDevice[device], d);
      }
      for (const [title, n] of Object.entries(current.titles)) {
        titles.set(title, (titles.get(title) || 0) + n);
      }
    }
    return { total, perDevice, titles };
  }

  // Per-second rates: the sum over partitions of (current - previous) / elapsed.
  rate(pick) {
    let perSecond = 0;
    for (const { current, rateFrom } of this.partitions.values()) {
      if (!rateFrom) continue;
      const seconds = (current.ts - rateFrom.ts) / 1e9;
      if (seconds <= 0) continue;
      let now = 0;
      let then = 0;
      for (const device of DEVICES) {
        now += pick(current.devices[device]);
        then += pick(rateFrom.devices[device]);
      }
      perSecond += Math.max(0, now - then) / seconds;
    }
    return perSecond;
  }

  render() {
    const { total, perDevice, titles } = this.merge();
    this.totals = total;
    const typeRates = EVENT_TYPES.map((t) => this.rate((d) => d.events[t] || 0));
    const startsRate = this.rate((d) => d.starts);
    const failuresRate = this.rate((d) => d.startup_failures);
    const switchesRate = this.rate((d) => d.bitrate_switches.up + d.bitrate_switches.down);
    const watchedRate = this.rate((d) => d.watched_ms);
    const rebufferRate = this.rate((d) => d.rebuffer_ms);
    const startups = [...total.startups].sort((a, b) => a - b);
    const p50 = percentile(startups, 0.5);
    const p95 = percentile(startups, 0.95);
    const eventsRate = typeRates.reduce((a, b) => a + b, 0);
    this.rates = { eventsRate, startsRate, failuresRate, switchesRate };
    const avgBitrate = total.playing ? total.bitrate_sum_kbps / total.playing : null;
    const ratio = total.watched_ms ? total.rebuffer_ms / total.watched_ms : null;

    this.setKpi("events_rate", eventsRate.toFixed(1));
    this.setKpi("events_total", sumEvents(total));
    this.setKpi("playing", total.playing);
    this.setKpi("paused", total.paused);
    this.setKpi("buffering", total.buffering);
    this.setKpi("starts_rate", startsRate.toFixed(2));
    this.setKpi("starts_total", total.starts);
    this.setKpi("startup_p50", p50 === null ? "–" : `${p50} ms`, p50);
    this.setKpi("startup_p95", p95 === null ? "–" : `${p95} ms`, p95);
    this.setKpi("rebuffering_ratio", ratio === null ? "–" : `${(ratio * 100).toFixed(2)} %`, ratio);
    this.setKpi("startup_failures", total.startup_failures);
    this.setKpi("avg_bitrate", avgBitrate === null ? "–" : `${Math.round(avgBitrate)} kbps`,
      avgBitrate);
    this.setKpi("switches_rate", switchesRate.toFixed(2));
    this.setKpi("partitions", this.partitions.size);
    for (const t of EVENT_TYPES) this.setKpi(`events_${t}`, total.events[t]);

    this.renderDevices(perDevice);
    this.renderTitles(titles);

    const h = this.history;
    h.t.push(Date.now() / 1000);
    typeRates.forEach((r, i) => h.byType[i].push(r));
    h.playing.push(total.playing);
    h.paused.push(total.paused);
    h.buffering.push(total.buffering);
    h.p50.push(p50);
    h.p95.push(p95);
    h.rebuffer.push(watchedRate ? (100 * rebufferRate) / watchedRate : null);
    h.bitrate.push(avgBitrate);
    for (const series of [h.t, ...h.byType, h.playing, h.paused, h.buffering, h.p50, h.p95,
      h.rebuffer, h.bitrate]) {
      if (series.length > HISTORY) series.shift();
    }
    this.renderCharts();
  }

  setKpi(name, text, raw) {
    const el = this.doc.querySelector(`[data-kpi="${name}"]`);
    if (!el) return;
    el.textContent = String(text);
    el.dataset.value = raw === undefined ? String(text) : String(raw ?? "");
  }

  renderDevices(perDevice) {
    const body = this.doc.getElementById("devices");
    if (!body) return;
    body.replaceChildren(...DEVICES.map((device) => {
      const t = perDevice[device];
      const row = this.doc.createElement("tr");
      const cells = [
        device, sumEvents(t), t.playing, t.paused, t.buffering, t.starts, t.startup_failures,
        t.watched_ms ? `${((100 * t.rebuffer_ms) / t.watched_ms).toFixed(2)} %` : "–",
        t.playing ? `${Math.round(t.bitrate_sum_kbps / t.playing)}` : "–",
      ];
      row.replaceChildren(...cells.map((value) => {
        const td = this.doc.createElement("td");
        td.textContent = String(value);
        return td;
      }));
      row.dataset.device = device;
      return row;
    }));
  }

  renderTitles(titles) {
    const list = this.doc.getElementById("titles");
    if (!list) return;
    const top = [...titles.entries()].filter(([, n]) => n > 0)
      .sort((a, b) => b[1] - a[1]).slice(0, 10);
    list.replaceChildren(...top.map(([title, n]) => {
      const li = this.doc.createElement("li");
      li.textContent = `${title} · ${n} watching`;
      return li;
    }));
  }

  renderCharts() {
    const h = this.history;
    if (!this.charts) {
      const chart = (id, title, series) => {
        const el = this.doc.getElementById(id);
        if (!el) return null;
        return new this.uPlot({
          title, width: el.clientWidth || 420, height: 180,
          series: [{}, ...series], axes: [{ stroke: "#aaa" }, { stroke: "#aaa" }],
        }, [[]].concat(series.map(() => [])), el);
      };
      this.charts = {
        events: chart("chart-events", "Events/s by type",
          EVENT_TYPES.map((t) => ({ label: t, stroke: COLOURS[t] }))),
        sessions: chart("chart-sessions", "Concurrent sessions", [
          { label: "playing", stroke: "#22c55e" }, { label: "paused", stroke: "#facc15" },
          { label: "buffering", stroke: "#a855f7" }]),
        startup: chart("chart-startup", "Startup time (ms)", [
          { label: "p50", stroke: "#38bdf8" }, { label: "p95", stroke: "#f97316" }]),
        rebuffer: chart("chart-rebuffer", "Rebuffering ratio (%) and avg bitrate", [
          { label: "rebuffering %", stroke: "#ef4444" },
          { label: "avg kbps / 1000", stroke: "#22c55e" }]),
      };
    }
    const c = this.charts;
    c.events?.setData([h.t, ...h.byType]);
    c.sessions?.setData([h.t, h.playing, h.paused, h.buffering]);
    c.startup?.setData([h.t, h.p50, h.p95]);
    c.rebuffer?.setData([h.t, h.rebuffer, h.bitrate.map((b) => (b === null ? null : b / 1000))]);
  }
}
