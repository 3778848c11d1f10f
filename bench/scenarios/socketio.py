"""Socket.IO fan-out: dashboards receiving the live feed from one gateway replica, one
message per event (`new_event`, the baseline's way) and batched (as the page asks), with
browser-like clients (they offer permessage-deflate, as Chromium does), against the same
gateway compressing for each client and the baseline article's server (every event
emitted to every client as its own message) with the same event stream."""

from __future__ import annotations

import contextlib
import math
import uuid
from typing import Any

from rts_common.contracts import PLAYBACK_EVENTS

from bench import plots
from bench.context import Bench, Section, ms, pct, ratio, times, verdict
from bench.load import drive, limit_note
from bench.processes import (
    Proc,
    baseline_events_app,
    event_sim,
    fresh_topics,
    gateway,
    metrics,
    running,
)

TITLE = "Socket.IO dashboards, event → client"
RATE = 200  # events/s, what `make run` plays
TARGET_CLIENTS = 1000
# What the gateway counts about the fan-out: read at both ends of each measured window.
COUNTED = {
    "emitted": "gateway_events_emitted_total",
    "framed": "gateway_socketio_messages_framed_total",
    "written": "gateway_socketio_messages_written_total",
    "dropped": "gateway_socketio_messages_dropped_total",
}


# (what the report calls it, async mode, clients ask for batches, gateway settings, which
# levels: "all" the full list, "some" the reference levels only)
RUNS: tuple[tuple[str, str, bool, dict[str, Any], str], ...] = (
    ("eventlet", "eventlet", False, {}, "all"),
    ("eventlet batched", "eventlet", True, {}, "all"),
    # The libraries' own path, as before the fan-out: every client compresses for itself.
    ("eventlet compressing", "eventlet", False, {"socketio_compression": "true"}, "some"),
    # gthread holds a thread per WebSocket: past a thousand, the mode is out of its depth.
    ("threading", "threading", False, {}, "some"),
)


def _line(label: str, r: dict[str, Any]) -> str:
    return (
        f"  {label:22} {r['clients']:5} clients: {pct(r['delivered'], 1)} delivered, "
        f"p50 {ms(r['latency_ms']['p50'])}, p99 {ms(r['latency_ms']['p99'])}, "
        f"{r['messages_per_core_second']:,.0f} msgs/core-s, "
        f"server CPU {r['server_cpu_percent']:.0f} %, loadgen CPU {r['cpu_percent']:.0f} %, "
        f"load {r['load_average']:.1f}"
    )


def run(bench: Bench) -> Section:
    levels = bench.pick([10, 100], [100, 500, 1000, 2000, 5000])
    some_levels = bench.pick([10], [100, 1000])
    baseline_levels = bench.pick([5], [1, 100, 1000])
    replica_counts = bench.pick([], [2, 3])
    replica_clients = TARGET_CLIENTS
    seconds = bench.pick(3, 20)
    drain = bench.pick(2, 10)
    warmup = bench.pick(1, 2)
    runs = [r for r in RUNS if not (bench.quick and r[0] == "eventlet compressing")]
    section = Section(
        "socketio",
        TITLE,
        f"""
event-sim plays {RATE} events/s (realtime, 20,000 simulated viewers), as `make run` does;
the gateway emits `new_event` at its default sample rate (20 a second per replica), the
once-a-second `qoe` aggregate of each partition, and to clients that asked for batches
(`options {{"batch": true}}`, as the page does) all of it in one `batch` message every
250 ms instead. The Node load generator connects {", ".join(map(str, levels))}
dashboards (socket.io-client, WebSocket only, one connection each, 200 new ones a
second, each offering permessage-deflate as Chromium does) and measures {seconds} s:
for the events whose `ts` falls in the window, now - `ts` at arrival and whether every
client got every one (waiting up to {drain} s for late ones), every message each client
received, and the gateway's CPU: messages per core-second is what all clients received
divided by the gateway's CPU time over the window (its ingest and aggregates included).
Same run references: the gateway with `GATEWAY_SOCKETIO_COMPRESSION` on ("compressing":
the libraries' own path, each client's messages compressed and framed for it alone) and
threading mode at {", ".join(map(str, some_levels))} clients; with several replicas
({", ".join(map(str, replica_counts)) or "full run only"}), {replica_clients} clients
spread over them; the events article's server (`bench/baselines/events_app.py`, every
event emitted to every client as one `new_event`, Flask-SocketIO's threading mode as
`socketio.run` starts it) at {", ".join(map(str, baseline_levels))} clients.
""",
    )
    kafka = bench.kafka
    prefix = fresh_topics(kafka)
    sim = event_sim(
        bench.logs,
        kafka,
        prefix,
        "--rate",
        RATE,
        "--users",
        20_000,
        "--seed",
        4,
        name="event-sim-socketio",
    )
    results: dict[str, dict[int, dict[str, Any]]] = {}
    idle_rss: dict[str, int] = {}

    def measure(
        key: str, servers: list[Proc], urls: list[str], n: int, profile: str, batch: bool = False
    ) -> None:
        # The gateways' /metrics (the baseline serves none).
        ports = [s.ops_port for s in servers if s.ops_port]

        def counted() -> dict[str, float]:
            totals = dict.fromkeys(COUNTED, 0.0)
            for port in ports:
                with contextlib.suppress(OSError):
                    values = metrics(port)
                    for name, metric in COUNTED.items():
                        totals[name] += values.get(metric, 0.0)
            return totals

        config = {
            "urls": urls,
            "clients": n,
            "seconds": seconds,
            "drain_seconds": drain,
            "warmup": warmup,
            "batch": batch,
            "deflate": True,
        }
        r = drive(
            bench,
            servers,
            "socketio",
            config,
            f"{key} {n} clients",
            profile_as=profile,
            counters=counted if ports else None,
        )
        # Every client should get every event of the window: the events any client got,
        # or the gateways' own count of emits over the window if that is more.
        emitted = (r.get("counted") or {}).get("emitted", 0.0)
        events = max(r["events_in_window"], emitted)
        r["expected"] = events * n
        r["delivered"] = r["received"] / r["expected"] if r["expected"] else 0.0
        cpu = r["server_cpu_percent"] / 100
        r["messages_per_core_second"] = (
            r["messages_per_second"] / cpu if cpu and not math.isnan(cpu) else math.nan
        )
        results.setdefault(key, {})[n] = r
        print(_line(key, r), flush=True)
        sim.check()

    with running(sim):
        # Each on a fresh server: one left behind by 5,000 clients is still busy with them.
        for key, mode, batch, settings, which in runs:
            mode_levels = levels if which == "all" else some_levels
            top = max(mode_levels)
            server, port = gateway(
                bench.logs,
                kafka,
                prefix,
                mode,
                name=f"gateway-socketio-{key.replace(' ', '-')}",
                group_id=f"bench-{uuid.uuid4().hex[:8]}",
                threads=max(256, top + 64),
                **settings,
            )
            with running(server):
                idle_rss[key] = server.rss_bytes()
                for n in mode_levels:
                    profiled = n == min(TARGET_CLIENTS, top)
                    measure(
                        key,
                        [server],
                        [f"http://127.0.0.1:{port}"],
                        n,
                        f"socketio-{key.replace(' ', '-')}-{n}" if profiled else "",
                        batch=batch,
                    )
        for count in replica_counts:
            group = f"bench-{uuid.uuid4().hex[:8]}"
            servers = []
            try:
                for i in range(count):
                    servers.append(
                        gateway(
                            bench.logs,
                            kafka,
                            prefix,
                            "eventlet",
                            group_id=group,
                            name=f"gateway-socketio-replica-{count}-{i}",
                        )
                    )
                measure(
                    f"{count} replicas",
                    [s for s, _ in servers],
                    [f"http://127.0.0.1:{p}" for _, p in servers],
                    replica_clients,
                    "",
                )
            finally:
                for s, _ in servers:
                    s.stop()
        server, port = baseline_events_app(bench.logs, kafka, prefix + PLAYBACK_EVENTS.name)
        with running(server):
            for n in baseline_levels:
                measure("baseline", [server], [f"http://127.0.0.1:{port}"], n, "")

    _report(section, results, idle_rss, levels, replica_counts, replica_clients, bench)
    return section


def _per_client_rss(r: dict[str, Any], idle: int) -> float:
    if r.get("unmeasured") or not r["connected"]:
        return math.nan
    rss: float = r["server_rss_bytes"] - idle
    return rss / int(r["connected"])


def _report(
    section: Section,
    results: dict[str, dict[int, dict[str, Any]]],
    idle_rss: dict[str, int],
    levels: list[int],
    replica_counts: list[int],
    replica_clients: int,
    bench: Bench,
) -> None:
    table = section.table(
        "Per server and client count (delivered: events of the window that reached every "
        "client; msgs/s: everything a client received per second; msgs/core-s: everything "
        "all clients received per CPU second of the server; compressed: connections that "
        "negotiated permessage-deflate; dropped: messages the gateway dropped for clients "
        "that were behind)",
        "server",
        "clients",
        "connected",
        "compressed",
        "delivered",
        "msgs/s per client",
        "p50",
        "p99",
        "server CPU",
        "msgs/core-s",
        "dropped",
        "RSS",
        "per client",
        "loadgen CPU",
        "load avg",
    )
    for key, per_level in results.items():
        for n, r in per_level.items():
            counted = r.get("counted") or {}
            per_client = _per_client_rss(r, idle_rss.get(key, 0)) if key in idle_rss else math.nan
            table.add(
                key,
                n,
                r["connected"],
                r.get("compressed", "-"),
                pct(r["delivered"], 2),
                f"{r['messages_per_second'] / max(1, n):.1f}",
                ms(r["latency_ms"]["p50"]),
                ms(r["latency_ms"]["p99"]),
                f"{r['server_cpu_percent']:.0f} %",
                f"{r['messages_per_core_second']:,.0f}",
                f"{counted['dropped']:.0f}" if "dropped" in counted else "-",
                f"{r['server_rss_bytes'] / 2**20:.0f} MiB",
                "-" if math.isnan(per_client) else f"{per_client / 1024:.0f} KiB",
                f"{r['cpu_percent']:.0f} %",
                f"{r['load_average']:.1f}",
            )
            note = limit_note(f"{key}, {n} clients", r)
            if note:
                section.notes.append(note)
            if r["errors"]:
                section.notes.append(f"{key}, {n} clients: errors {r['errors']}")

    target_n = TARGET_CLIENTS if TARGET_CLIENTS in levels else max(levels)
    top = max(levels)
    base = results["baseline"].get(target_n) or results["baseline"][max(results["baseline"])]
    targets = {"eventlet": (0.99, 250.0), "eventlet batched": (0.99, 500.0)}
    for key, (share, p99_ms) in targets.items():
        r = results[key][target_n]
        p99, delivered = r["latency_ms"]["p99"] or math.nan, r["delivered"] or 0.0
        way = "batched" if "batched" in key else "one by one"
        section.stand(
            f"{target_n} dashboards, {way}: delivered, p99",
            f"{pct(delivered, 2)}, {ms(p99)}",
            f"baseline at {base['clients']}: {pct(base['delivered'], 2)}, "
            f"{ms(base['latency_ms']['p99'])}",
            f"p99 {times(ratio(p99, base['latency_ms']['p99'] or math.nan))} the baseline's",
            f"≥ {pct(share)} of events, p99 ≤ {p99_ms:.0f} ms",
            verdict(delivered >= share and p99 <= p99_ms),
        )
    r = results["eventlet"][target_n]
    compressing = results.get("eventlet compressing", {}).get(target_n)
    reference = (
        f"compressing (the libraries' path): {compressing['messages_per_core_second']:,.0f}"
        if compressing
        else ""
    )
    section.stand(
        f"messages per core-second, {target_n} dashboards one by one",
        f"{r['messages_per_core_second']:,.0f}",
        reference,
        times(ratio(r["messages_per_core_second"], compressing["messages_per_core_second"]))
        if compressing
        else "",
        "≥ 25,000",
        verdict(r["messages_per_core_second"] >= 25_000),
    )
    for key in ("eventlet", "eventlet batched"):
        r = results[key][top]
        way = "batched" if "batched" in key else "one by one"
        section.stand(
            f"{top} dashboards, {way}",
            f"{pct(r['delivered'], 2)}, p99 {ms(r['latency_ms']['p99'])}, "
            f"{r['messages_per_core_second']:,.0f} msgs/core-s",
            "",
            "",
            "measured",
            "reported",
        )
    for key in [k for k in idle_rss if k in results]:
        n = target_n if target_n in results[key] else max(results[key])
        per_client = _per_client_rss(results[key][n], idle_rss[key])
        mine = key in ("eventlet", "eventlet batched")
        section.stand(
            f"gateway RSS per dashboard ({key}, {n} clients)",
            f"{per_client / 1024:.0f} KiB",
            f"idle {idle_rss[key] / 2**20:.0f} MiB",
            "",
            "≤ 64 KiB" if mine else "reported",
            verdict(per_client <= 64 * 1024) if mine else "reported",
        )
        section.data[f"rss_per_client_{key}"] = per_client
    section.data["results"] = {k: {str(n): r for n, r in v.items()} for k, v in results.items()}
    section.data["idle_rss"] = idle_rss

    by_clients = {
        k: [(n, 100 * (r["delivered"] or 0), r["latency_ms"]["p99"] or 0) for n, r in v.items()]
        for k, v in results.items()
        if "replica" not in k
    }
    plots.against_load(
        bench.out / "socketio-clients.png",
        f"{TITLE}: against clients",
        "clients",
        by_clients,
        "messages delivered (%)",
        "p99 latency (ms)",
    )
    section.figures.append(("socketio-clients.png", "Delivered share and p99 against clients"))
    if replica_counts:
        one = results["eventlet"].get(replica_clients)
        points = [(1, 100 * (one["delivered"] or 0), one["latency_ms"]["p99"] or 0)] if one else []
        points += [
            (
                c,
                100 * (results[f"{c} replicas"][replica_clients]["delivered"] or 0),
                results[f"{c} replicas"][replica_clients]["latency_ms"]["p99"] or 0,
            )
            for c in replica_counts
        ]
        plots.against_load(
            bench.out / "socketio-replicas.png",
            f"{TITLE}: {replica_clients} clients over replicas",
            "replicas",
            {"eventlet": points},
            "messages delivered (%)",
            "p99 latency (ms)",
            log_x=False,
        )
        section.figures.append(
            ("socketio-replicas.png", "Delivered share and p99 against replicas")
        )
    plots.latency_cdfs(
        bench.out / "socketio-cdf.png",
        f"{TITLE}: latency",
        {
            f"{k}, {n} clients": r["latency_ms"]["cdf"]
            for k, v in results.items()
            for n, r in v.items()
            if n in (target_n, top) or k == "baseline"
        },
    )
    section.figures.append(("socketio-cdf.png", "Event → client latency CDFs"))
