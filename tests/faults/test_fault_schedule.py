"""Random faults for ten minutes, from a fixed seed so a failure can be replayed: the
broker frozen, stopped, or cut off from the gateway; a gateway replica, capture or
event-sim killed with SIGKILL and started again (as Kubernetes would). After each heal,
clients are served again within a bound; at the end, every event Kafka acknowledged is
counted exactly once in the gateway's aggregates, whichever replica counted it.

FAULT_SCHEDULE_MINUTES (10) and FAULT_SCHEDULE_SEED set the run; `make soak` runs it
longer.
"""

from __future__ import annotations

import collections
import os
import random
import time
from dataclasses import dataclass, field
from typing import Any

import pytest
from confluent_kafka import Consumer, TopicPartition
from rts_devstack.faults import TcpProxy
from rts_devstack.processes import ServiceProcess

from tests.faults.conftest import FaultStack, MakeStack
from tests.faults.recovery import served_again, summary
from tests.fixtures.socketio import Listener

MINUTES = float(os.environ.get("FAULT_SCHEDULE_MINUTES", "10"))
SEED = int(os.environ.get("FAULT_SCHEDULE_SEED", "2026"))
CAMERA = "cam-schedule"
BOUND = 120.0  # everything back within this long after a heal
FAULTS = ("freeze", "stop", "partition", "kill-gateway", "kill-capture", "kill-event-sim")


@dataclass
class Platform:
    """The services under test, each started again after a SIGKILL with what it had."""

    stack: FaultStack
    proxy: TcpProxy
    sims: int = 0
    camera: ServiceProcess = field(init=False)
    sim: ServiceProcess = field(init=False)
    gateway: ServiceProcess = field(init=False)

    def __post_init__(self) -> None:
        self.camera = self.new_camera()
        self.sim = self.new_sim()
        self.gateway = self.new_gateway()

    def new_camera(self) -> ServiceProcess:
        return self.stack.camera(CAMERA)

    def new_sim(self) -> ServiceProcess:
        # Each run's event ids are its own (they start with the run's id), as after a
        # real restart, so none is mistaken for a duplicate.
        self.sims += 1
        flags = f"--rate 150 --users 2000 --seed {SEED + self.sims} --flush-timeout 60"
        return self.stack.event_sim(*flags.split())

    def new_gateway(self) -> ServiceProcess:
        # Only the gateway reaches Kafka through the proxy that a partition cuts.
        gateway = self.stack.gateway(
            "--release-after-seconds", "2", bootstrap=self.stack.kafka.proxied_bootstrap
        )
        gateway.wait_ready(timeout=90)
        return gateway


def _broker_fault(platform: Platform, fault: str, seconds: float) -> None:
    kafka = platform.stack.kafka

    def restart() -> None:
        kafka.start_node(1)
        kafka.wait_ready()

    start, heal = {
        "freeze": (lambda: kafka.pause_node(1), lambda: kafka.resume_node(1)),
        "stop": (lambda: kafka.stop_node(1), restart),
        "partition": (platform.proxy.block, platform.proxy.heal),
    }[fault]
    start()
    try:
        time.sleep(seconds)
    finally:
        heal()


def _kill(platform: Platform, fault: str) -> None:
    name = fault.removeprefix("kill-").replace("-", "_")
    attribute = {"gateway": "gateway", "capture": "camera", "event_sim": "sim"}[name]
    getattr(platform, attribute).kill()
    started = {"gateway": platform.new_gateway, "capture": platform.new_camera}
    setattr(platform, attribute, started.get(name, platform.new_sim)())


def _events_in_kafka(stack: FaultStack) -> dict[int, int]:
    """Each playback-events partition's end offset: the records Kafka acknowledged."""
    topic = stack.prefix + "playback-events"
    consumer = Consumer({"bootstrap.servers": stack.kafka.bootstrap, "group.id": "schedule"})
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        return {
            p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
            for p in partitions
        }
    finally:
        consumer.close()


def _counted(snapshot: dict[str, Any]) -> int:
    return sum(sum(device["events"].values()) for device in snapshot["devices"].values())


@pytest.mark.timeout(int(MINUTES * 60 + 1200))
def test_random_faults_for_minutes_then_every_event_counted_once(make_stack: MakeStack) -> None:
    stack = make_stack(proxied=True)
    ((listen, advertise),) = stack.kafka.proxied_ports
    rng = random.Random(SEED)
    applied: list[tuple[str, float, dict[str, float]]] = []
    with TcpProxy(advertise, listen) as proxy:
        platform = Platform(stack, proxy)
        served_again(platform.gateway, CAMERA, BOUND)
        end = time.monotonic() + MINUTES * 60
        while time.monotonic() < end:
            fault, seconds = rng.choice(FAULTS), round(rng.uniform(5, 25), 1)
            if fault.startswith("kill-"):
                seconds = 0.0
                _kill(platform, fault)
            else:
                _broker_fault(platform, fault, seconds)
            took = served_again(
                platform.gateway, CAMERA, BOUND, producers=[platform.sim, platform.camera]
            )
            applied.append((fault, seconds, took))
            print(f"{fault} {seconds:.0f}s, back after (s): {summary(took)}", flush=True)
            time.sleep(rng.uniform(2, 8))

        code = platform.sim.terminate(timeout=90)
        assert code == 0, platform.sim.log()
        ends = _events_in_kafka(stack)
        # The newest aggregate of each partition, once it covers every record: its counts
        # are every acknowledged event, each once, across the replicas that owned it.
        dashboard = Listener(platform.gateway.url)
        try:
            newest: dict[int, dict[str, Any]] = {}

            def covered() -> bool:
                for snapshot in dashboard.get("qoe"):
                    newest[snapshot["partition"]] = snapshot
                return set(newest) == set(ends) and all(
                    newest[p]["offset"] >= end for p, end in ends.items()
                )

            platform.gateway.wait_for(covered, 120, "aggregates that cover every record")
        finally:
            dashboard.close()
        for service in (platform.camera, platform.gateway):
            assert service.running, f"{service.name} exited:\n{service.log()}"

    kinds = collections.Counter(fault for fault, _seconds, _took in applied)
    slowest = max((max(took.values()), fault) for fault, _seconds, took in applied)
    counted = {p: _counted(newest[p]) for p in ends}
    print(
        f"seed {SEED}, {MINUTES:g} min: {len(applied)} faults {dict(kinds)}; slowest "
        f"recovery {slowest[0]:.1f}s ({slowest[1]}); events acknowledged {sum(ends.values())}, "
        f"counted {sum(counted.values())}"
    )
    assert {p: newest[p]["offset"] for p in ends} == ends
    assert counted == ends
