"""event-sim: one process's throughput and CPU as fast as it can go, against Kafka's
ProducerPerformance with the same payloads and producer settings; and its pacing."""

from __future__ import annotations

import json
import re
import resource
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, TopicPartition
from rts_common.contracts import PLAYBACK_EVENTS
from rts_eventsim.simulation import SimConfig, Simulator

from bench.context import Bench, Section, pct, ratio, times
from bench.processes import event_sim, fresh_topics, kafka_tool

TITLE = "event-sim, one producer process"
SEED = 20261122
USERS = 20_000
PRODUCER = {  # event-sim's producer settings (its defaults), for ProducerPerformance
    "acks": "all",
    "enable.idempotence": "true",
    "compression.type": "lz4",
    "linger.ms": "20",
    "batch.size": str(512 * 1024),
}


@dataclass
class Measured:
    records: int
    seconds: float
    cpu_seconds: float  # of the whole process, start-up included
    loop_cpu_seconds: float = 0.0  # event-sim: of its loop and final flush only

    @property
    def rate(self) -> float:
        return self.records / self.seconds

    def per_10k(self, cpu: float) -> float:
        return cpu / self.records * 10_000


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_sim(bench: Bench, name: str, *args: Any) -> tuple[dict[str, Any], float, str]:
    """event-sim to the end: its `finished` summary, its CPU seconds, and its topic prefix."""
    prefix = fresh_topics(bench.kafka, [PLAYBACK_EVENTS])
    before = children_cpu()
    sim = event_sim(bench.logs, bench.kafka, prefix, "--seed", SEED, *args, name=name)
    if sim.wait(1800) != 0:
        raise RuntimeError(f"event-sim failed:\n{sim.tail()}")
    cpu = children_cpu() - before
    for line in sim.log(None).splitlines():
        if line.startswith("{") and '"finished"' in line:
            return json.loads(line), cpu, prefix
    raise RuntimeError(f"event-sim printed no summary:\n{sim.tail()}")


def payloads(path: Path, count: int) -> float:
    """`count` of event-sim's events, one per line; returns the mean value size."""
    sim = Simulator(SimConfig(SEED, 1000.0, USERS, 1000, time.time_ns()))
    total = 0
    with path.open("wb") as out:
        for _ in range(count):
            event = sim.next_event()
            out.write(event.value + b"\n")
            total += len(event.value)
    return total / count


def producer_performance(
    bench: Bench, records: int, payload_file: Path | None, size: int
) -> Measured:
    prefix = fresh_topics(bench.kafka, [PLAYBACK_EVENTS])
    source = ["--payload-file", payload_file] if payload_file else ["--record-size", size]
    out, cpu = kafka_tool(
        bench.logs,
        bench.kafka,
        "ProducerPerformance",
        "--bootstrap-server",
        bench.kafka.bootstrap,
        "--topic",
        prefix + PLAYBACK_EVENTS.name,
        "--num-records",
        records,
        "--throughput",
        -1,
        *source,
        "--command-property",
        *(f"{k}={v}" for k, v in PRODUCER.items()),
    )
    # Its last line: "N records sent, X records/sec (Y MB/sec), ..."
    match = re.search(r"(\d+) records sent, ([\d.]+) records/sec", out.strip().splitlines()[-1])
    if not match:
        raise RuntimeError(f"unexpected ProducerPerformance output:\n{out[-2000:]}")
    sent, rate = int(match[1]), float(match[2])
    return Measured(sent, sent / rate, cpu)


def record_times_ms(bench: Bench, topic: str) -> list[int]:
    consumer = Consumer(
        {
            "bootstrap.servers": bench.kafka.bootstrap,
            "group.id": "bench-times",
            "enable.auto.commit": False,
        }
    )
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        ends = {
            p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
            for p in partitions
        }
        consumer.assign([TopicPartition(topic, p, 0) for p in partitions])
        found: list[int] = []
        done = {p for p, end in ends.items() if end == 0}
        while len(done) < len(ends):
            for msg in consumer.consume(10_000, timeout=1.0):
                found.append(msg.timestamp()[1])
                if (msg.offset() or 0) + 1 >= ends[msg.partition() or 0]:
                    done.add(msg.partition() or 0)
        return sorted(found)
    finally:
        consumer.close()


def run(bench: Bench) -> Section:
    count = bench.pick(20_000, 1_000_000)
    rates = bench.pick([1000], [1000, 10_000])
    paced_seconds = bench.pick(2, 20)
    section = Section(
        "eventsim",
        TITLE,
        f"""
`event-sim --no-realtime --count {count:,} --users {USERS:,}` after a 20k-event warm-up
run: events per second until the broker acknowledged the last one, and CPU per 10k events
(user + system, librdkafka's threads included: of the sending loop and flush, from its
`finished` log line, and of the whole process). Kafka's `ProducerPerformance` (from the
broker's jars) sends as many records with event-sim's producer settings (acks=all,
idempotent, lz4, linger 20 ms, 512 KiB batches): once with a file of 50,000 of
event-sim's own events as payloads, once (full run) with random records of their mean size. Paced
runs (`--rate R --duration {paced_seconds}`): the achieved rate from the broker's record
timestamps, its error against R, and the worst whole one-second window.
""",
    )
    payload_file = bench.out / "logs" / "events.jsonl"
    payload_file.parent.mkdir(parents=True, exist_ok=True)
    size = payloads(payload_file, 50_000)
    run_sim(
        bench,
        "event-sim-warmup",
        "--no-realtime",
        "--count",
        bench.pick(2000, 20_000),
        "--users",
        USERS,
    )
    with bench.span("event-sim unpaced"):
        done, cpu, _ = run_sim(
            bench, "event-sim-unpaced", "--no-realtime", "--count", count, "--users", USERS
        )
    if done["delivered"] != count:
        raise RuntimeError(f"event-sim delivered {done['delivered']} of {count}")
    sim = Measured(count, done["wall_seconds"] + done["flush_seconds"], cpu, done["cpu_seconds"])
    with bench.span("ProducerPerformance"):
        perf = producer_performance(bench, count, payload_file, round(size))
        perf_random = None if bench.quick else producer_performance(bench, count, None, round(size))
    print(f"  event-sim {sim.rate:,.0f}/s; ProducerPerformance {perf.rate:,.0f}/s", flush=True)
    table = section.table(
        f"{count:,} records of {size:.0f} B on average",
        "producer",
        "records/s",
        "CPU s per 10k: sending",
        "whole process",
    )
    table.add(
        "event-sim --no-realtime (simulate + JSON + produce)",
        f"{sim.rate:,.0f}",
        f"{sim.per_10k(sim.loop_cpu_seconds):.3f}",
        f"{sim.per_10k(sim.cpu_seconds):.3f}",
    )
    table.add(
        "ProducerPerformance, event-sim's payloads",
        f"{perf.rate:,.0f}",
        "",
        f"{perf.per_10k(perf.cpu_seconds):.3f}",
    )
    if perf_random is not None:
        table.add(
            f"ProducerPerformance, random {size:.0f} B records",
            f"{perf_random.rate:,.0f}",
            "",
            f"{perf_random.per_10k(perf_random.cpu_seconds):.3f}",
        )
    share = ratio(sim.rate, perf.rate)
    section.stand(
        "unpaced events/s",
        f"{sim.rate:,.0f}",
        f"ProducerPerformance {perf.rate:,.0f}/s, same payloads",
        times(share),
        "reported (no target)",
        "reported",
    )

    paced = section.table(
        "Paced", "--rate", "events", "achieved/s", "error", "worst 1 s window", "CPU s per 10k"
    )
    paced_data = []
    for rate in rates:
        with bench.span(f"event-sim --rate {rate}"):
            done, _, prefix = run_sim(
                bench,
                f"event-sim-paced-{rate}",
                "--rate",
                rate,
                "--duration",
                paced_seconds,
                "--users",
                max(USERS, rate * 100),
            )
        found = record_times_ms(bench, prefix + PLAYBACK_EVENTS.name)
        span = (found[-1] - found[0]) / 1000
        achieved = (len(found) - 1) / span
        per_second = Counter((t - found[0]) // 1000 for t in found)
        full = [per_second[s] for s in range(1, int(span))]
        worst = max(abs(n - rate) for n in full) / rate if full else float("nan")
        paced.add(
            f"{rate:,}",
            f"{len(found):,}",
            f"{achieved:,.1f}",
            f"{achieved / rate - 1:+.3%}",
            pct(worst, 2),
            f"{done['cpu_seconds'] / len(found) * 10_000:.3f}",
        )
        paced_data.append(
            {"rate": rate, "events": len(found), "achieved": achieved, "worst_second": worst}
        )
        print(
            f"  --rate {rate}: {achieved:,.1f}/s achieved, worst second {pct(worst, 2)}", flush=True
        )
    section.data = {
        "event_sim": vars(sim),
        "producer_performance": vars(perf),
        "producer_performance_random": vars(perf_random) if perf_random else None,
        "paced": paced_data,
        "record_size": size,
    }
    return section
