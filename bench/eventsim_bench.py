"""event-sim's throughput, pacing accuracy and CPU cost, against Kafka's own producer tool.

Starts its own single-node broker on free ports (LocalKafka, throw-away data folder),
then measures, in one run:

1. sustained events/s of one `event-sim` process as fast as possible (`--no-realtime`),
   counted until the broker acknowledged the last event, and its CPU per 10k events
   (user + system of the whole process, librdkafka's threads included);
2. Kafka's `org.apache.kafka.tools.ProducerPerformance` sending the same number of
   records of the same payloads (a file of event-sim's own events, so size and
   compressibility match), same acks, compression, idempotence, linger and batch size:
   records/s and CPU per 10k, and event-sim's throughput as a ratio of it;
3. paced runs (`--rate R --duration D`): the achieved rate measured from the broker's
   record timestamps (set when the event was handed to the producer), its error against
   R, and the worst one-second window.

Usage: .venv/bin/python bench/eventsim_bench.py [--events 1000000] [--rates 1000,10000]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from confluent_kafka import Consumer, TopicPartition
from rts_common.contracts import PLAYBACK_EVENTS
from rts_common.net import free_ports
from rts_devstack.broker import KafkaDistribution, LocalKafka
from rts_eventsim.simulation import SimConfig, Simulator

EVENT_SIM = str(Path(sys.executable).parent / "event-sim")
SEED = 20261122
USERS = 20_000
PRODUCER = {  # what event-sim's producer uses (services/event-sim/.../kafka.py, defaults)
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

    @property
    def cpu_per_10k(self) -> float:
        return self.cpu_seconds / self.records * 10_000

    @property
    def loop_cpu_per_10k(self) -> float:
        return self.loop_cpu_seconds / self.records * 10_000


def children_cpu() -> float:
    """CPU seconds (user + system) of every child process that has been waited for."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def timed(
    argv: list[str], env: dict[str, str]
) -> tuple[subprocess.CompletedProcess[str], float, float]:
    before, started = children_cpu(), time.monotonic()
    result = subprocess.run(
        argv, env=env, capture_output=True, text=True, timeout=1800, check=False
    )
    wall = time.monotonic() - started
    if result.returncode != 0:
        sys.exit(
            f"{argv[0]} failed ({result.returncode}):\n"
            f"{result.stderr[-3000:]}{result.stdout[-3000:]}"
        )
    return result, wall, children_cpu() - before


def finished_line(stderr: str) -> dict[str, float]:
    for line in stderr.splitlines():
        if line.startswith("{") and '"finished"' in line:
            return json.loads(line)  # type: ignore[no-any-return]
    sys.exit(f"event-sim printed no summary:\n{stderr[-3000:]}")


def sim_env(kafka: LocalKafka, prefix: str) -> dict[str, str]:
    return {
        **os.environ,
        "KAFKA_BOOTSTRAP": kafka.bootstrap,
        "KAFKA_TOPIC_PREFIX": prefix,
        "EVENTSIM_OPS_PORT": "0",
        "LOG_FORMAT": "json",
    }


def payloads(path: Path, count: int) -> tuple[float, float]:
    """Write `count` of event-sim's events, one per line; return mean value and key sizes."""
    sim = Simulator(SimConfig(SEED, 1000.0, USERS, 1000, time.time_ns()))
    values, keys = 0, 0
    with path.open("wb") as out:
        for _ in range(count):
            event = sim.next_event()
            out.write(event.value + b"\n")
            values += len(event.value)
            keys += len(event.key)
    return values / count, keys / count


def new_prefix(kafka: LocalKafka) -> str:
    prefix = f"b{uuid.uuid4().hex[:8]}."
    kafka.create_topics([PLAYBACK_EVENTS], prefix=prefix)
    return prefix


def unpaced_event_sim(kafka: LocalKafka, events: int) -> Measured:
    prefix = new_prefix(kafka)
    result, _, cpu = timed(
        [EVENT_SIM, "--no-realtime", "--count", str(events), "--seed", str(SEED),
         "--users", str(USERS)],
        sim_env(kafka, prefix),
    )  # fmt: skip
    done = finished_line(result.stderr)
    if done["delivered"] != events:
        sys.exit(f"event-sim delivered {done['delivered']} of {events}")
    # The loop's time plus the final flush: until the broker acknowledged the last event.
    return Measured(events, done["wall_seconds"] + done["flush_seconds"], cpu, done["cpu_seconds"])


def producer_performance(kafka: LocalKafka, events: int, payload_file: Path | None,
                         record_size: int) -> Measured:  # fmt: skip
    prefix = new_prefix(kafka)
    source = (["--payload-file", str(payload_file)] if payload_file
              else ["--record-size", str(record_size)])  # fmt: skip
    argv = KafkaDistribution.fetch().java(
        "org.apache.kafka.tools.ProducerPerformance",
        "--bootstrap-server", kafka.bootstrap, "--topic", prefix + PLAYBACK_EVENTS.name,
        "--num-records", str(events), "--throughput", "-1", *source,
        "--command-property", *(f"{k}={v}" for k, v in PRODUCER.items()),
        heap="1g",
    )  # fmt: skip
    result, _, cpu = timed(argv, dict(os.environ))
    # Its last line: "N records sent, X records/sec (Y MB/sec), ..."
    match = re.search(r"(\d+) records sent, ([\d.]+) records/sec", result.stdout.splitlines()[-1])
    if not match:
        sys.exit(f"unexpected ProducerPerformance output:\n{result.stdout[-2000:]}")
    sent, rate = int(match.group(1)), float(match.group(2))
    return Measured(sent, sent / rate, cpu)


def record_times_ms(kafka: LocalKafka, topic: str) -> list[int]:
    consumer = Consumer({"bootstrap.servers": kafka.bootstrap, "group.id": f"bench-{uuid.uuid4()}",
                         "enable.auto.commit": False})  # fmt: skip
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        ends = {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
                for p in partitions}  # fmt: skip
        consumer.assign([TopicPartition(topic, p, 0) for p in partitions])
        times: list[int] = []
        done = {p for p, end in ends.items() if end == 0}
        while len(done) < len(ends):
            for msg in consumer.consume(10_000, timeout=1.0):
                times.append(msg.timestamp()[1])
                if msg.offset() + 1 >= ends[msg.partition()]:
                    done.add(msg.partition())
        return sorted(times)
    finally:
        consumer.close()


def paced_event_sim(kafka: LocalKafka, rate: int, seconds: float) -> dict[str, float]:
    prefix = new_prefix(kafka)
    result, wall, _ = timed(
        [EVENT_SIM, "--rate", str(rate), "--duration", str(seconds), "--seed", str(SEED),
         "--users", str(max(USERS, rate * 100))],
        sim_env(kafka, prefix),
    )  # fmt: skip
    done = finished_line(result.stderr)
    times = record_times_ms(kafka, prefix + PLAYBACK_EVENTS.name)
    span = (times[-1] - times[0]) / 1000
    achieved = (len(times) - 1) / span
    per_second = Counter((t - times[0]) // 1000 for t in times)
    full = [per_second[s] for s in range(1, int(span))]  # whole seconds, not the edges
    worst = max(abs(n - rate) for n in full) / rate if full else float("nan")
    return {
        "rate": rate,
        "events": len(times),
        "achieved": achieved,
        "error": achieved / rate - 1,
        "worst_second": worst,
        "skipped": done["skipped"],
        "cpu_per_10k": done["cpu_seconds"] / len(times) * 10_000,
        "wall": wall,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=1_000_000, help="events per unpaced run")
    parser.add_argument("--rates", default="1000,10000", help="paced rates to check")
    parser.add_argument("--paced-seconds", type=float, default=20.0)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="eventsim-bench-") as tmp:
        ports = free_ports(2)
        kafka = LocalKafka(Path(tmp) / "kafka", ports=ports[:1], controller_ports=ports[1:],
                           heap="1g")  # fmt: skip
        print(f"broker: Kafka {kafka.dist.version} on {kafka.bootstrap}; "
              f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}")  # fmt: skip
        with kafka:
            payload_file = Path(tmp) / "events.jsonl"
            value_size, key_size = payloads(payload_file, 50_000)
            print(f"records: {value_size:.0f} B JSON value + {key_size:.0f} B key on average")
            # A short warm-up run: the broker's first producer waits for its coordinator.
            unpaced_event_sim(kafka, 20_000)

            sim = unpaced_event_sim(kafka, args.events)
            perf = producer_performance(kafka, args.events, payload_file, round(value_size))
            perf_random = producer_performance(kafka, args.events, None, round(value_size))
            print()
            print("| producer | records/s | CPU s per 10k records: sending | whole process |")
            print("|---|---:|---:|---:|")
            print(f"| event-sim --no-realtime (simulate + JSON + produce) | {sim.rate:,.0f} | "
                  f"{sim.loop_cpu_per_10k:.3f} | {sim.cpu_per_10k:.3f} |")  # fmt: skip
            print(f"| ProducerPerformance, event-sim's payloads | {perf.rate:,.0f} | | "
                  f"{perf.cpu_per_10k:.3f} |")  # fmt: skip
            print(f"| ProducerPerformance, random {round(value_size)} B records | "
                  f"{perf_random.rate:,.0f} | | {perf_random.cpu_per_10k:.3f} |")  # fmt: skip
            print(f"\nevent-sim / ProducerPerformance (same payloads): {sim.rate / perf.rate:.2f}")
            print()
            print("| --rate | events | achieved/s | error | worst 1 s window | skipped | "
                  "CPU s per 10k |")  # fmt: skip
            print("|---:|---:|---:|---:|---:|---:|---:|")
            for rate in (int(r) for r in args.rates.split(",")):
                p = paced_event_sim(kafka, rate, args.paced_seconds)
                print(f"| {rate:,} | {p['events']:,} | {p['achieved']:,.1f} | "
                      f"{p['error']:+.3%} | {p['worst_second']:.2%} | {p['skipped']:.0f} | "
                      f"{p['cpu_per_10k']:.3f} |")  # fmt: skip


if __name__ == "__main__":
    main()
