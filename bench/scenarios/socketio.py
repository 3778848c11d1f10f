"""Socket.IO fan-out: dashboards receiving `new_event` from one gateway replica (each
async mode) and from several replicas, against the baseline article's server (every event
emitted to every client as its own message) with the same event stream."""

from __future__ import annotations

import contextlib
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
# (what the report calls it, the async mode, whether clients ask for batches)
RUNS = (
    ("eventlet", "eventlet", False),
    ("eventlet batched", "eventlet", True),
    ("threading", "threading", False),
)


def _line(label: str, r: dict[str, Any]) -> str:
    return (
        f"  {label:22} {r['clients']:5} clients: {pct(r['delivered'], 1)} delivered, "
        f"p50 {ms(r['latency_ms']['p50'])}, p99 {ms(r['latency_ms']['p99'])}, "
        f"server CPU {r['server_cpu_percent']:.0f} %, loadgen CPU {r['cpu_percent']:.0f} %"
    )


def run(bench: Bench) -> Section:
    levels = bench.pick([10], [1, 100, 1000, 5000])
    # gthread holds a thread per WebSocket: past a thousand, the mode is out of its depth.
    threading_levels = [n for n in levels if n <= 1000]
    baseline_levels = bench.pick([5], [1, 100, 1000])
    replica_counts = bench.pick([], [2, 3])
    replica_clients = 1000
    seconds = bench.pick(3, 20)
    drain = bench.pick(2, 10)
    warmup = bench.pick(1, 2)
    section = Section(
        "socketio",
        TITLE,
        f"""
event-sim plays {RATE} events/s (realtime, 20,000 simulated viewers), as `make run` does;
the gateway emits `new_event` at its default sample rate (20 a second per replica) plus
the once-a-second `qoe` aggregates. The Node load generator connects
{", ".join(map(str, levels))} dashboards (socket.io-client, WebSocket only, one
connection each, 200 new ones a second) and measures {seconds} s: for the events whose
`ts` falls in the window, now - `ts` at arrival and whether every client got every one
(waiting up to {drain} s for late ones). Threading mode runs up to
{max(threading_levels)} clients (a thread per WebSocket). With several replicas
({", ".join(map(str, replica_counts)) or "full run only"}), {replica_clients} clients are
spread over them and every event still reaches everyone through the Kafka broadcast.
The baseline is the events article's server (`bench/baselines/events_app.py`): every
event emitted to every client as one `new_event`, Flask-SocketIO's threading mode as
`socketio.run` starts it, at {", ".join(map(str, baseline_levels))} clients.
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

        def emitted() -> float:
            """new_event emits the gateways counted (the baseline counts none)."""
            total = 0.0
            for port in ports:
                with contextlib.suppress(OSError):
                    total += metrics(port).get("gateway_events_emitted_total", 0.0)
            return total

        config = {
            "urls": urls,
            "clients": n,
            "seconds": seconds,
            "drain_seconds": drain,
            "warmup": warmup,
            "batch": batch,
        }
        r = drive(
            bench,
            servers,
            "socketio",
            config,
            f"{key} {n} clients",
            profile_as=profile,
            counter=None if key == "baseline" else emitted,
        )
        # Every client should get every event of the window: the events any client got,
        # or the gateways' own count of emits over the window if that is more.
        events = max(r["events_in_window"], r.get("counted", 0))
        r["expected"] = events * n
        r["delivered"] = r["received"] / r["expected"] if r["expected"] else 0.0
        results.setdefault(key, {})[n] = r
        print(_line(key, r), flush=True)
        sim.check()

    with running(sim):
        # Each on a fresh server: one left behind by 5,000 clients is still busy with them.
        # Batched clients ask for their events four times a second in one message, as the
        # dashboard's page does.
        for key, mode, batch in RUNS:
            mode_levels = levels if mode == "eventlet" else threading_levels
            server, port = gateway(
                bench.logs,
                kafka,
                prefix,
                mode,
                name=f"gateway-socketio-{key.replace(' ', '-')}",
                group_id=f"bench-{uuid.uuid4().hex[:8]}",
                threads=max(256, max(mode_levels) + 64),
            )
            with running(server):
                idle_rss[key] = server.rss_bytes()
                for n in mode_levels:
                    measure(
                        key,
                        [server],
                        [f"http://127.0.0.1:{port}"],
                        n,
                        f"socketio-{key.replace(' ', '-')}-{n}"
                        if n == min(1000, max(mode_levels))
                        else "",
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
        "Per server and client count (delivered: messages of the window that reached every "
        "client; msgs/s: everything a client received per second)",
        "server",
        "clients",
        "connected",
        "delivered",
        "msgs/s per client",
        "p50",
        "p99",
        "server CPU",
        "RSS",
        "loadgen CPU",
    )
    for key, per_level in results.items():
        for n, r in per_level.items():
            table.add(
                key,
                n,
                r["connected"],
                pct(r["delivered"], 2),
                f"{r['messages_per_second'] / max(1, n):.1f}",
                ms(r["latency_ms"]["p50"]),
                ms(r["latency_ms"]["p99"]),
                f"{r['server_cpu_percent']:.0f} %",
                f"{r['server_rss_bytes'] / 2**20:.0f} MiB",
                f"{r['cpu_percent']:.0f} %",
            )
            note = limit_note(f"{key}, {n} clients", r)
            if note:
                section.notes.append(note)
            if r["errors"]:
                section.notes.append(f"{key}, {n} clients: errors {r['errors']}")

    target_n = 1000 if 1000 in levels else max(levels)
    top = max(levels)
    for mode in [key for key, _mode, _batch in RUNS if key in results]:
        n = target_n if target_n in results[mode] else max(results[mode])
        r = results[mode][n]
        base = results["baseline"].get(n) or results["baseline"][max(results["baseline"])]
        p99, delivered = r["latency_ms"]["p99"] or float("nan"), r["delivered"] or 0.0
        section.stand(
            f"{n} dashboards, {mode}: delivered, p99",
            f"{pct(delivered, 2)}, {ms(p99)}",
            f"baseline at {base['clients']}: {pct(base['delivered'], 2)}, "
            f"{ms(base['latency_ms']['p99'])}",
            f"p99 {times(ratio(p99, base['latency_ms']['p99'] or float('nan')))} the baseline's",
            "every message, p99 ≤ 250 ms",
            verdict(delivered >= 1.0 and p99 <= 250),
        )
        per_client = (
            float("nan")
            if r.get("unmeasured")
            else (r["server_rss_bytes"] - idle_rss[mode]) / max(1, r["connected"])
        )
        section.stand(
            f"gateway RSS per Socket.IO client ({mode})",
            f"{per_client / 1024:.0f} KiB",
            f"idle {idle_rss[mode] / 2**20:.0f} MiB",
            "",
            "reported",
            "reported",
        )
        section.data[f"rss_per_client_{mode}"] = per_client
    r = results["eventlet"][top]
    section.stand(
        f"{top} dashboards, eventlet",
        f"{pct(r['delivered'], 2)}, p99 {ms(r['latency_ms']['p99'])}",
        "",
        "",
        "measured",
        "reported",
    )
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
