"""Event ingest: how many playback events a gateway replica validates and aggregates per
second with its QoE aggregates exact, against a consumer that only parses JSON and
Kafka's ConsumerPerformance on the same records; then several replicas in one group."""

from __future__ import annotations

import collections
import contextlib
import json
import re
import time
import uuid
from typing import Any

import socketio
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition
from rts_common.contracts import PLAYBACK_EVENTS
from rts_devstack.processes import cpu_seconds
from rts_gateway.feed.qoe import merge

from bench import plots, profile
from bench.context import Bench, Section, ratio, times, verdict
from bench.processes import (
    Proc,
    event_sim,
    fresh_topics,
    gateway,
    kafka_tool,
    labelled_metrics,
    metrics,
    running,
)

TITLE = "Event ingest with exact aggregates, per replica"
MODES = ("eventlet", "threading")
COUNTER = "gateway_playback_events_total"


def json_consumer(bench: Bench, topic: str, count: int) -> tuple[float, list[dict[str, Any]]]:
    """Every record of `topic` read and JSON-parsed in this process: (records/s, events)."""
    consumer = Consumer(
        {
            "bootstrap.servers": bench.kafka.bootstrap,
            "group.id": f"bench-json-{uuid.uuid4().hex[:8]}",
            "enable.auto.commit": False,
        }
    )
    partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
    events: list[dict[str, Any]] = []
    first = 0.0
    while len(events) < count:
        for msg in consumer.consume(1000, 1.0):
            if msg.error() is None:
                first = first or time.monotonic()
                events.append(json.loads(msg.value() or b"{}"))
    rate = count / (time.monotonic() - first)
    consumer.close()
    return rate, events


def consumer_performance(bench: Bench, topic: str, count: int) -> float:
    """Kafka's ConsumerPerformance on the same records: its records/s while fetching."""
    out, _ = kafka_tool(
        bench.logs,
        bench.kafka,
        "ConsumerPerformance",
        "--bootstrap-server",
        bench.kafka.bootstrap,
        "--topic",
        topic,
        "--num-records",
        count,
        "--group",
        f"bench-perf-{uuid.uuid4().hex[:8]}",
        "--hide-header",
    )
    # start, end, MB, MB/s, records, records/s, rebalance ms, fetch ms, fetch MB/s, fetch rec/s
    line = [x for x in out.splitlines() if re.match(r"\d{4}-", x.strip())][-1]
    return float(line.split(",")[9])


def _balanced(servers: list[tuple[Proc, int]], topic: str) -> bool:
    """Every replica owns at least one partition of `topic` (for up to 3 replicas)."""
    key = f"gateway_partitions_assigned:{topic}"
    try:
        return all(
            labelled_metrics(proc.ops_port or 0, "topic").get(key, 0) >= 1 for proc, _ in servers
        )
    except OSError:
        return False


def consume_all(
    bench: Bench, servers: list[tuple[Proc, int]], count: int, topic: str, spy_name: str = ""
) -> dict[str, Any]:
    """Wait until the replicas counted `count` events; the rate from the first counted
    event to the last (so start-up is not in it), and their CPU per 10k events. With
    several replicas the clock starts once each owns a partition: the first one to start
    reads alone until the others join, and that is start-up too."""
    first_seen = first_at = 0.0
    first_cpu = 0.0
    seen = 0.0
    spy = None
    deadline = time.monotonic() + 120 + count / 2000
    while seen < count:
        for proc, _ in servers:
            proc.check()
        if time.monotonic() > deadline:
            raise RuntimeError(f"the gateway counted {seen:.0f} of {count} events")
        total = 0.0
        for proc, _ in servers:
            with contextlib.suppress(OSError):
                total += metrics(proc.ops_port or 0).get(COUNTER, 0.0)
        seen = total
        if seen and not first_at and (len(servers) == 1 or _balanced(servers, topic)):
            first_seen, first_at = seen, time.monotonic()
            first_cpu = sum(cpu_seconds(p.pid) for p, _ in servers)
            if spy_name and bench.profile:
                spy = profile.start(bench, servers[0][0].worker_pid(), spy_name, seconds=10)
        time.sleep(0.25)  # each scrape costs the gateway a little: not too often
    if not first_at:
        raise RuntimeError("the replicas read every event before each owned a partition")
    elapsed = time.monotonic() - first_at
    cpu = sum(cpu_seconds(p.pid) for p, _ in servers) - first_cpu
    measured = count - first_seen
    if measured <= 0:
        raise RuntimeError(
            f"the replicas counted all {count:,} events by the first scrape: nothing left "
            "to measure (write more events)"
        )
    result: dict[str, Any] = {
        "events_per_second": measured / elapsed,
        "measured_events": measured,
        "seconds": elapsed,
        "cpu_seconds_per_10k": cpu / measured * 10_000,
        "cpu_percent": 100 * cpu / elapsed,
    }
    if spy is not None:
        result["profile"] = profile.finish(spy)
    return result


def aggregates_exact(port: int, events: list[dict[str, Any]]) -> dict[str, Any]:
    """The merged `qoe` snapshots of every partition against counts from the records."""
    snapshots: dict[int, dict[str, Any]] = {}
    client = socketio.Client(reconnection=False)
    client.on("qoe", lambda s: snapshots.__setitem__(s["partition"], s))
    client.connect(f"http://127.0.0.1:{port}", transports=["websocket"])
    time.sleep(2.5)  # the next once-a-second snapshots carry the final counts
    client.disconnect()
    total = merge(list(snapshots.values()))
    expected = {
        "events": dict(collections.Counter(e["event_type"] for e in events)),
        "starts": sum(1 for e in events if e.get("startup_ms") is not None),
        "startup_failures": sum(1 for e in events if e.get("reason") == "startup_failure"),
    }
    got = {
        "events": {k: v for k, v in total["events"].items() if v},
        "starts": total["starts"],
        "startup_failures": total["startup_failures"],
    }
    return {"exact": got == expected, "expected": expected, "got": got}


def run(bench: Bench) -> Section:
    # Several scrapes' worth even for the quick run: a replica reads 10,000 events
    # between two scrapes (0.25 s apart) at the rates this measures.
    count = bench.pick(50_000, 500_000)
    replica_counts = bench.pick([], [2, 3])
    section = Section(
        "ingest",
        TITLE,
        f"""
event-sim writes {count:,} events as fast as it can into a fresh `playback-events` (3
partitions locally); then, reading the same records from the start: a consumer in the
benchmark's process that only parses JSON (confluent-kafka, `consume(1000)`, `json.loads`:
what any consumer pays before it does anything), Kafka's `ConsumerPerformance` (fetch
rate, no parsing), and a fresh gateway in each async mode (its consumer group starting at
the earliest offset), measured from its first counted event to its last
(`{COUNTER}`). Its merged `qoe` snapshots are then compared with counts taken from the
records. With {" and ".join(map(str, replica_counts)) or "(full run only)"} replicas in
one group (eventlet), the same from a fresh group.
""",
    )
    kafka = bench.kafka
    prefix = fresh_topics(kafka)
    topic = prefix + PLAYBACK_EVENTS.name
    sim = event_sim(
        bench.logs,
        kafka,
        prefix,
        "--no-realtime",
        "--count",
        count,
        "--seed",
        3,
        "--users",
        20_000,
        name="event-sim-ingest",
    )
    if sim.wait(600) != 0:
        raise RuntimeError(f"event-sim failed:\n{sim.tail()}")
    json_rate, events = json_consumer(bench, topic, count)
    perf_rate = consumer_performance(bench, topic, count)
    print(
        f"  JSON-only consumer {json_rate:,.0f}/s, ConsumerPerformance {perf_rate:,.0f}/s",
        flush=True,
    )
    results: dict[str, dict[str, Any]] = {}
    for mode in MODES:
        server, port = gateway(
            bench.logs,
            kafka,
            prefix,
            mode,
            name=f"gateway-ingest-{mode}",
            ready=False,
            events_start="earliest",
            group_id=f"bench-{uuid.uuid4().hex[:8]}",
        )
        with running(server), bench.span(f"{mode} ingest"):
            r = consume_all(bench, [(server, port)], count, topic, f"ingest-{mode}")
            r.update(aggregates_exact(port, events))
        results[mode] = r
        print(
            f"  {mode:9}: {r['events_per_second']:,.0f} events/s, "
            f"{r['cpu_seconds_per_10k']:.2f} CPU s per 10k, exact: {r['exact']}",
            flush=True,
        )
        if not r["exact"]:
            section.notes.append(
                f"{mode}: aggregates NOT exact: expected {r['expected']}, got {r['got']}"
            )
    for n in replica_counts:
        group = f"bench-{uuid.uuid4().hex[:8]}"
        servers: list[tuple[Proc, int]] = []
        try:
            for i in range(n):
                servers.append(
                    gateway(
                        bench.logs,
                        kafka,
                        prefix,
                        "eventlet",
                        ready=False,
                        events_start="earliest",
                        group_id=group,
                        name=f"gateway-ingest-replica-{n}-{i}",
                    )
                )
            with bench.span(f"{n} replicas ingest"):
                r = consume_all(bench, servers, count, topic)
        finally:
            for proc, _ in servers:
                proc.stop()
        results[f"{n} replicas"] = r
        print(f"  {n} replicas: {r['events_per_second']:,.0f} events/s", flush=True)

    table = section.table(
        f"{count:,} events (CPU: the gateway processes' user + system time)",
        "reader",
        "events/s",
        "÷ JSON-only",
        "CPU s per 10k events",
        "CPU %",
        "aggregates exact",
    )
    table.add("JSON-only consumer", f"{json_rate:,.0f}", "1.00x", "", "", "")
    table.add(
        "Kafka ConsumerPerformance",
        f"{perf_rate:,.0f}",
        times(ratio(perf_rate, json_rate)),
        "",
        "",
        "",
    )
    for key, r in results.items():
        table.add(
            f"gateway {key}" if key in MODES else f"gateway x {key}",
            f"{r['events_per_second']:,.0f}",
            times(ratio(r["events_per_second"], json_rate)),
            f"{r['cpu_seconds_per_10k']:.2f}",
            f"{r['cpu_percent']:.0f} %",
            "" if "exact" not in r else "yes" if r["exact"] else "NO",
        )
    for mode in MODES:
        rate = results[mode]["events_per_second"]
        share = ratio(rate, json_rate)
        section.stand(
            f"one replica, {mode}: events/s, aggregates exact",
            f"{rate:,.0f}, {'exact' if results[mode]['exact'] else 'NOT exact'}, "
            f"{results[mode]['cpu_seconds_per_10k'] * 100:.0f} µs of CPU an event",
            f"JSON-only {json_rate:,.0f}/s; ConsumerPerformance {perf_rate:,.0f}/s",
            f"{times(share)} JSON-only",
            "≥ 60,000/s, aggregates exact",
            verdict(rate >= 60_000 and results[mode]["exact"]),
        )
    section.data = {
        "results": results,
        "json_only": json_rate,
        "consumer_performance": perf_rate,
        "events": count,
    }
    if replica_counts:
        points = [
            (1, results["eventlet"]["events_per_second"] / 1000, results["eventlet"]["cpu_percent"])
        ]
        points += [
            (
                n,
                results[f"{n} replicas"]["events_per_second"] / 1000,
                results[f"{n} replicas"]["cpu_percent"],
            )
            for n in replica_counts
        ]
        plots.against_load(
            bench.out / "ingest-replicas.png",
            f"{TITLE}: replicas",
            "replicas",
            {"gateway (eventlet)": points},
            "thousand events/s",
            "gateways' CPU (% of a core)",
            log_x=False,
        )
        section.figures.append(("ingest-replicas.png", "Ingest rate and CPU against replicas"))
    return section
