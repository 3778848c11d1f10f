"""Dashboard benchmark: how many playback events one gateway replica ingests per second
with its QoE aggregates exact, and the event → client latency with 1, 100 and 1,000
Socket.IO clients.

1. Ingest: event-sim writes N events as fast as it can; a fresh gateway (its consumer
   group starting at the earliest offset) reads them. Measured from its first event to
   its last (its `gateway_playback_events_total`), against a plain confluent-kafka
   consumer reading and JSON-parsing the same records in the same run (the ratio is what
   the gateway's validation, aggregation and emits cost). Then the merged `qoe`
   snapshots a Socket.IO client receives are compared with counts taken from Kafka.
2. Latency: event-sim at a live rate, the gateway emitting `new_event` at its default
   sample rate, and CLIENTS simulated clients in another process (bench/socketio_clients.py)
   measuring now - event ts. One machine, one clock.

    .venv/bin/python bench/dashboard_bench.py [--events 200000] [--clients 1,100,1000]
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import socketio
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition
from prometheus_client.parser import text_string_to_metric_families
from rts_common.net import free_ports
from rts_devstack.broker import LocalKafka
from rts_gateway.feed.qoe import merge
from support import cpu_seconds, fresh_topics, local_broker

BIN = Path(sys.executable).parent
HERE = Path(__file__).resolve().parent


def metric_sum(ops: int, name: str) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{ops}/metrics", timeout=5) as response:
        text = response.read().decode()
    return sum(s.value for f in text_string_to_metric_families(text) for s in f.samples
               if s.name == name)  # fmt: skip


def wait_ready(ops: int) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{ops}/readyz", timeout=2):
                return
        except OSError:
            time.sleep(0.3)
    raise SystemExit("gateway not ready")


def gateway(
    kafka: LocalKafka, prefix: str, port: int, ops: int, *, ready: bool = True, **settings: str
) -> subprocess.Popen[bytes]:
    """A gateway on `port`, its /metrics and /readyz on `ops`."""
    env = {**os.environ, "KAFKA_BOOTSTRAP": kafka.bootstrap, "KAFKA_TOPIC_PREFIX": prefix,
           "LOG_LEVEL": "warning", "GATEWAY_GROUP_ID": f"bench-{prefix}",
           **{f"GATEWAY_{k.upper()}": v for k, v in settings.items()}}  # fmt: skip
    proc = subprocess.Popen([str(BIN / "gateway"), "--port", str(port), "--ops-port", str(ops)],
                            env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    if ready:
        wait_ready(ops)
    return proc


def event_sim(kafka: LocalKafka, prefix: str, *args: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "KAFKA_BOOTSTRAP": kafka.bootstrap, "KAFKA_TOPIC_PREFIX": prefix,
           "LOG_LEVEL": "warning"}  # fmt: skip
    argv = [str(BIN / "event-sim"), "--ops-port", str(free_ports(1)[0]), *args]
    return subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def read_all(kafka: LocalKafka, topic: str, count: int) -> tuple[float, list[dict[str, Any]]]:
    """Every record of `topic`, JSON-parsed; returns (records/s, events)."""
    consumer = Consumer({"bootstrap.servers": kafka.bootstrap, "group.id": "bench-raw",
                         "enable.auto.commit": False})  # fmt: skip
    partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
    events: list[dict[str, Any]] = []
    first = 0.0
    while len(events) < count:
        for msg in consumer.consume(1000, 1.0):
            if msg.error() is None:
                first = first or time.monotonic()
                events.append(json.loads(msg.value()))
    rate = count / (time.monotonic() - first)
    consumer.close()
    return rate, events


def ingest(kafka: LocalKafka, count: int) -> dict[str, Any]:
    prefix = fresh_topics(kafka)
    sim = event_sim(kafka, prefix, "--no-realtime", "--count", str(count), "--seed", "3",
                    "--users", "20000")  # fmt: skip
    sim.wait(600)
    raw_rate, events = read_all(kafka, prefix + "playback-events", count)
    port, ops = free_ports(2)
    # Not waiting for readiness: the group starts reading at once, and the clock with it.
    proc = gateway(kafka, prefix, port, ops, ready=False, events_start="earliest")
    snapshots: dict[int, dict[str, Any]] = {}
    first_seen = first_at = first_cpu = 0.0
    seen = 0.0
    while seen < count:
        try:
            seen = metric_sum(ops, "gateway_playback_events_total")
        except OSError:
            seen = 0.0
        if seen and not first_at:
            first_seen, first_at, first_cpu = seen, time.monotonic(), cpu_seconds(proc.pid)
        time.sleep(0.02)
    elapsed = time.monotonic() - first_at
    cpu_used = cpu_seconds(proc.pid) - first_cpu
    measured = count - first_seen
    client = socketio.Client(reconnection=False)
    client.on("qoe", lambda s: snapshots.__setitem__(s["partition"], s))
    client.connect(f"http://127.0.0.1:{port}", transports=["websocket"])
    time.sleep(2.5)  # the next once-a-second snapshots carry the final counts
    client.disconnect()
    proc.terminate()
    proc.wait(20)
    total = merge(list(snapshots.values()))
    by_type = collections.Counter(e["event_type"] for e in events)
    expected = {
        "events": dict(by_type),
        "starts": sum(1 for e in events if e.get("startup_ms") is not None),
        "startup_failures": sum(1 for e in events if e.get("reason") == "startup_failure"),
    }
    got = {
        "events": {k: v for k, v in total["events"].items() if v},
        "starts": total["starts"],
        "startup_failures": total["startup_failures"],
    }
    return {
        "events": count,
        "gateway_events_per_second": measured / elapsed,
        "raw_consumer_events_per_second": raw_rate,
        "ratio": measured / elapsed / raw_rate,
        "gateway_cpu_seconds_per_10k": cpu_used / measured * 10_000,
        "aggregates_exact": got == expected,
        "expected": expected,
        "got": got,
    }


def latency(kafka: LocalKafka, clients: list[int], seconds: float) -> list[dict[str, Any]]:
    prefix = fresh_topics(kafka)
    port, ops = free_ports(2)
    # 5 new_event emits per second reach every client: 5,000 messages/s for 1,000 clients,
    # which the Python clients of the harness can still take in on this machine.
    proc = gateway(kafka, prefix, port, ops, event_sample_rate="5")
    sim = event_sim(kafka, prefix, "--rate", "200", "--users", "20000", "--seed", "4")
    results = []
    try:
        for count in clients:
            cpu, wall = cpu_seconds(proc.pid), time.monotonic()
            harness = subprocess.Popen(
                [sys.executable, str(HERE / "socketio_clients.py"), f"http://127.0.0.1:{port}",
                 str(count), str(seconds)],
                stdout=subprocess.PIPE, text=True,
            )  # fmt: skip
            harness_cpu = 0.0
            while harness.poll() is None:
                harness_cpu = max(harness_cpu, cpu_seconds(harness.pid))
                time.sleep(0.5)
            out = harness.stdout.read() if harness.stdout else ""
            result = json.loads(out.strip().splitlines()[-1])
            elapsed = time.monotonic() - wall
            result["gateway_cpu_percent"] = (cpu_seconds(proc.pid) - cpu) / elapsed * 100
            result["harness_cpu_percent"] = harness_cpu / elapsed * 100
            results.append(result)
            print(f"{count:5} clients ({result['connected']} connected): "
                  f"{result['received']} events, p50 {result['p50_ms']:.1f} ms, "
                  f"p99 {result['p99_ms']:.1f} ms, "
                  f"gateway CPU {result['gateway_cpu_percent']:.0f} %, "
                  f"clients' CPU {result['harness_cpu_percent']:.0f} %",
                  flush=True)  # fmt: skip
    finally:
        sim.terminate()
        proc.terminate()
        sim.wait(20)
        proc.wait(20)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--clients", default="1,100,1000")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    with local_broker() as kafka:
        result = ingest(kafka, args.events)
        print(f"ingest: {result['gateway_events_per_second']:.0f} events/s (raw consumer "
              f"{result['raw_consumer_events_per_second']:.0f}/s, ratio {result['ratio']:.2f}), "
              f"{result['gateway_cpu_seconds_per_10k']:.2f} CPU s per 10k events, "
              f"aggregates exact: {result['aggregates_exact']}", flush=True)  # fmt: skip
        if not result["aggregates_exact"]:
            print(f"  expected {result['expected']}\n  got      {result['got']}")
        lat = latency(kafka, [int(c) for c in args.clients.split(",")], args.seconds)
    if args.json:
        args.json.write_text(json.dumps({"ingest": result, "latency": lat}, indent=2))


if __name__ == "__main__":
    main()
