"""Gateway scaling benchmark: how long partitions take to move when replicas come, go or
die; how many playback events 1, 2 and 3 replicas ingest per second; how MJPEG viewers
fare on 1 replica and on 3 behind nginx.

Everything is real: a broker on free ports, event-sim, the `capture` test pattern,
gateway replicas under gunicorn (started with rts_devstack.processes, as the tests do),
and nginx configured as `make run GATEWAYS=N` configures it.

1. Rebalance (`--rounds` times, event-sim at 300 events/s throughout):
   - up: 1 -> 3 replicas. From the new replicas answering ready to the group having
     spread the events partitions 1/1/1 (their start-up, some seconds, is given apart);
   - down: 3 -> 1 gracefully. From SIGTERM to the remaining replica owning all three;
   - kill: kill -9 one of 3. From the kill to the survivors owning all three (the
     consumer group waits GATEWAY_GROUP_SESSION_TIMEOUT_SECONDS, 10 s, for a silent
     member);
   and the takeover itself (checkpoint and committed offset read, state restored), from
   the replicas' gateway_partition_takeover_seconds.
2. Ingest: event-sim writes `--events` events as fast as it can; then, for 1, 2 and 3
   replicas in a new consumer group each, the events counted per second over all
   replicas in a `--window` once the group has settled, with the CPU of the replicas
   and of the broker; and at the end whether the replicas' counters add up to exactly
   the events written (no event counted twice across the start-up rebalances).
3. MJPEG: a 640x360 15 fps camera; 1 replica, then 3, behind nginx; for each number of
   `--viewers`, that many MJPEG connections through nginx from the benchmarks' Node load
   generator (round-robin to the replicas), measured over `--seconds`: fps per viewer,
   latency p50/p99, CPU of the replicas and of nginx.

    .venv/bin/python -m bench.scale [--parts rebalance,ingest,mjpeg] [--rounds 3]
        [--events 400000] [--window 8] [--viewers 100,300] [--seconds 10]

Figures are printed, with the machine's load average: on a shared machine, read them
against it.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import tempfile
import time
import uuid
from pathlib import Path

from rts_devstack import launch
from rts_devstack.broker import LocalKafka
from rts_devstack.fleet import Fleet
from rts_devstack.launch import Launch
from rts_devstack.processes import ServiceGroup, ServiceProcess, cpu_seconds, metric_value
from rts_devstack.proxy import Proxy

from bench.processes import LoadGenerator, broker_pid, fresh_topics, local_broker

CAMERA = "bench-cam"
PARTITIONS = 3  # playback-events, locally
EVENTS = "playback-events"


class Replicas(Fleet):
    """Gateway replicas of one consumer group (the devstack's Fleet, as `make scale` and
    the tests drive it), behind nginx when given a front."""

    def __init__(
        self, group: ServiceGroup, prefix: str, env: dict[str, str], front: Proxy | None = None
    ) -> None:
        def replica(name: str) -> Launch:
            return launch.gateway(port=group.port(), ops_port=group.port(), replica=name, env=env)

        super().__init__(group.start, front, replica)
        self.prefix = prefix

    @property
    def running(self) -> dict[str, ServiceProcess]:
        return self.replicas

    def metric(self, name: str, **labels: str) -> dict[str, float]:
        return {n: p.metric(name, **labels) for n, p in self.replicas.items()}

    def wait_spread(self, timeout: float = 120.0) -> float:
        """Seconds until the running replicas own every events partition, evenly."""
        try:
            return self.wait_settled(self.prefix + EVENTS, PARTITIONS, timeout, poll=0.05)
        except AssertionError as failed:
            raise SystemExit(str(failed)) from None

    def counted(self) -> float:
        return sum(self.metric("gateway_playback_events_total").values())

    def cpu(self) -> float:
        return sum(p.cpu_seconds() for p in self.replicas.values())


def env_for(kafka: LocalKafka, prefix: str, **settings: str) -> dict[str, str]:
    return {
        "KAFKA_BOOTSTRAP": kafka.bootstrap,
        "KAFKA_TOPIC_PREFIX": prefix,
        "LOG_LEVEL": "warning",
        "GATEWAY_GROUP_ID": f"bench-{uuid.uuid4().hex[:8]}",
        "GATEWAY_EVENTS_START": "earliest",
        **settings,
    }


def event_sim(group: ServiceGroup, *args: str) -> ServiceProcess:
    return group.start(launch.event_sim(*args, ops_port=group.port()))


def summary(values: list[float]) -> str:
    return (
        f"median {statistics.median(values):5.1f} s  (min {min(values):.1f}, "
        f"max {max(values):.1f}, n={len(values)})"
    )


# -- 1. rebalance


def rebalance(kafka: LocalKafka, rounds: int) -> None:
    prefix = fresh_topics(kafka)
    with ServiceGroup(env_for(kafka, prefix)) as group:
        event_sim(group, "--rate", "300", "--users", "30000")
        fleet = Replicas(group, prefix, group.env)
        fleet.start("gateway-1")
        fleet.wait_spread()
        starting, up, down, killed = [], [], [], []
        for _ in range(rounds):
            starting.append(fleet.start("gateway-2", "gateway-3"))
            up.append(fleet.wait_spread())
            time.sleep(3)
            leaving = [fleet.running[n] for n in ("gateway-2", "gateway-3")]
            for process in leaving:
                process.signal(signal.SIGTERM)
            fleet.replicas = {"gateway-1": fleet.replicas["gateway-1"]}
            down.append(fleet.wait_spread())
            for process in leaving:
                process.wait_exit(60)
            fleet.start("gateway-2", "gateway-3")
            fleet.wait_spread()
            time.sleep(3)
            fleet.kill("gateway-3")
            killed.append(fleet.wait_spread())
            fleet.stop("gateway-2")
            fleet.wait_spread()
        survivor = fleet.running["gateway-1"]
        status, text = survivor.get("/metrics")
        takeovers = metric_value(text, "gateway_partition_takeover_seconds_count")
        takeover_s = metric_value(text, "gateway_partition_takeover_seconds_sum")
    print("rebalance (events partitions, event-sim at 300/s):")
    print(f"  new replicas start (gunicorn to ready): {summary(starting)}")
    print(f"  up 1 -> 3, ready to spread:             {summary(up)}")
    print(f"  down 3 -> 1, SIGTERM to owned:          {summary(down)}")
    print(f"  kill -9 1 of 3, kill to owned:          {summary(killed)}")
    if status == 200 and takeovers:
        average = takeover_s / takeovers * 1000
        print(
            f"  takeover on gateway-1 (checkpoint read, state restored): {average:.0f} ms on "
            f"average over {takeovers:.0f}"
        )


# -- 2. ingest


def ingest(kafka: LocalKafka, events: int, window: float) -> None:
    prefix = fresh_topics(kafka)
    with ServiceGroup(env_for(kafka, prefix)) as group:
        writer = event_sim(
            group, "--no-realtime", "--count", str(events), "--users", "50000", "--seed", "3"
        )
        writer.wait_exit(600)
    broker = broker_pid(kafka) or 0
    print(f"ingest of {events:,} events already in the topic ({PARTITIONS} partitions):")
    baseline = 0.0
    for count in (1, 2, 3):
        with ServiceGroup(env_for(kafka, prefix)) as group:
            fleet = Replicas(group, prefix, group.env)
            fleet.start(*[f"gateway-{i}" for i in range(1, count + 1)])
            fleet.wait_spread()
            first, cpu, broker_cpu = fleet.counted(), fleet.cpu(), cpu_seconds(broker)
            started = time.monotonic()
            time.sleep(window)
            counted, elapsed = fleet.counted() - first, time.monotonic() - started
            cpu = (fleet.cpu() - cpu) / elapsed * 100
            broker_cpu = (cpu_seconds(broker) - broker_cpu) / elapsed * 100
            rate = counted / elapsed
            baseline = baseline or rate
            note = "" if first + counted < events else "  (reached the end: use more --events)"
            total = read_to_the_end(fleet, events)
            verdict = "exact" if total == events else "TWICE" if total > events else "unfinished"
            print(
                f"  {count} replica(s): {rate:8,.0f} events/s  x{rate / baseline:4.2f}  "
                f"replicas' CPU {cpu:4.0f} %  broker's CPU {broker_cpu:4.0f} %  "
                f"counted {total:,.0f} of {events:,} ({verdict}){note}",
                flush=True,
            )


def read_to_the_end(fleet: Replicas, events: int) -> float:
    """The replicas' count once it reaches `events` or stops moving for 15 s."""
    total, moved = fleet.counted(), time.monotonic()
    while total < events and time.monotonic() - moved < 15:
        time.sleep(0.5)
        now = fleet.counted()
        if now != total:
            total, moved = now, time.monotonic()
    time.sleep(2)  # anything counted twice would show now
    return fleet.counted()


# -- 3. MJPEG


def mjpeg(kafka: LocalKafka, levels: list[int], seconds: float) -> None:
    prefix = fresh_topics(kafka)
    print("MJPEG through nginx, 640x360 at 15 fps:")
    with ServiceGroup(env_for(kafka, prefix)) as group, tempfile.TemporaryDirectory() as tmp:
        group.start(
            launch.capture(
                CAMERA,
                *"--source test --fps 15 --test-width 640 --test-height 360".split(),
                *"--no-motion --no-faces".split(),
                ops_port=group.port(),
            )
        )
        for count in (1, 3):
            front = Proxy(group.port(), Path(tmp) / f"nginx-{count}")
            fleet = Replicas(group, prefix, group.env, front)
            fleet.start(*[f"gateway-{i}" for i in range(1, count + 1)])
            for process in fleet.running.values():
                process.wait_http(f"{process.url}/snapshot/{CAMERA}.jpg", timeout=60)
            nginx = fleet.nginx
            assert nginx is not None
            for viewers in levels:
                config = {
                    "targets": [f"{front.url}/stream/{CAMERA}"],
                    "viewers": viewers,
                    "seconds": seconds,
                }
                name = f"loadgen-{count}-{viewers}"
                generator = LoadGenerator(Path(tmp), "mjpeg", config, name)
                generator.phase("measuring", timeout=120 + viewers / 50)
                cpu, nginx_cpu = fleet.cpu(), nginx.cpu_seconds()
                started = time.monotonic()
                generator.phase("window-closed", timeout=seconds + 120)
                elapsed = time.monotonic() - started
                cpu = (fleet.cpu() - cpu) / elapsed * 100
                nginx_cpu = (nginx.cpu_seconds() - nginx_cpu) / elapsed * 100
                result = generator.result(timeout=120)
                latency = result["latency_ms"]
                print(
                    f"  {count} replica(s) {viewers:4} viewers: "
                    f"{result['fps_per_viewer']:5.1f} fps/viewer  latency p50 "
                    f"{latency['p50']:6.1f} ms p99 {latency['p99']:7.1f} ms  replicas' CPU "
                    f"{cpu:4.0f} %  nginx {nginx_cpu:4.0f} %  load generator "
                    f"{result['cpu_percent']:3.0f} %",
                    flush=True,
                )
            fleet.stop(*list(fleet.running))
            nginx.kill()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--parts", default="rebalance,ingest,mjpeg")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--events", type=int, default=400_000)
    parser.add_argument("--window", type=float, default=8.0)
    parser.add_argument("--viewers", default="100,300")
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    parts = args.parts.split(",")
    print(
        f"{os.cpu_count()} cores; load average at the start "
        f"{' '.join(f'{x:.1f}' for x in os.getloadavg())}",
        flush=True,
    )
    with local_broker() as kafka:
        if "rebalance" in parts:
            rebalance(kafka, args.rounds)
        if "ingest" in parts:
            ingest(kafka, args.events, args.window)
        if "mjpeg" in parts:
            mjpeg(kafka, [int(v) for v in args.viewers.split(",")], args.seconds)
    print(f"load average at the end {' '.join(f'{x:.1f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
