"""Stacks for fault tests: each test gets its own broker (or cluster), so freezing, killing
or starving it disturbs no other test; services start through the one process helper."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from rts_common.contracts import TOPICS
from rts_devstack.broker import LocalKafka
from rts_devstack.broker_config import ports_needed
from rts_devstack.processes import ServiceGroup, ServiceProcess

from tests.fixtures.mjpeg import MjpegClient
from tests.fixtures.processes import kafka_env, start_capture, start_event_sim, start_gateway


@dataclass
class FaultStack:
    kafka: LocalKafka
    prefix: str
    group: ServiceGroup = field(default_factory=ServiceGroup)

    def env(self, bootstrap: str | None = None, **more: str) -> dict[str, str]:
        return kafka_env(bootstrap or self.kafka.bootstrap, self.prefix, **more)

    def camera(self, camera: str, *flags: str, fps: int = 10) -> ServiceProcess:
        return start_capture(
            self.group,
            camera,
            "--source",
            "test",
            "--fps",
            str(fps),
            *"--test-width 320 --test-height 240 --no-faces".split(),
            *flags,
            env=self.env(LOG_FORMAT="json"),
        )

    def gateway(self, *flags: str, bootstrap: str | None = None, **env: str) -> ServiceProcess:
        group = {"GATEWAY_GROUP_ID": f"faults-{self.prefix}", "GATEWAY_EVENTS_START": "earliest"}
        return start_gateway(self.group, *flags, env=self.env(bootstrap, **group, **env))

    def event_sim(self, *flags: str) -> ServiceProcess:
        return start_event_sim(self.group, *flags, env=self.env(LOG_FORMAT="json"))


MakeStack = Callable[..., FaultStack]


@pytest.fixture
def make_stack(tmp_path: Path) -> Iterator[MakeStack]:
    """`make_stack(nodes=1, proxied=False, data=None)`: a broker or cluster of its own with
    the platform's topics; its services are killed and its nodes stopped afterwards."""
    made: list[FaultStack] = []

    def make(nodes: int = 1, *, proxied: bool = False, data: Path | None = None) -> FaultStack:
        group = ServiceGroup()
        kafka = LocalKafka.on_ports(
            data or tmp_path / f"kafka-{len(made)}",
            group.ports(ports_needed(nodes, proxied=proxied)),
            nodes,
            proxied=proxied,
        )
        stack = FaultStack(kafka, f"f{uuid.uuid4().hex[:8]}.", group)
        made.append(stack)
        kafka.start()
        kafka.create_topics(TOPICS, prefix=stack.prefix)
        return stack

    yield make
    for stack in made:
        stack.group.kill_all()
        stack.kafka.stop()


def fresh_frame_age(gateway: ServiceProcess, camera: str, timeout: float = 5.0) -> float:
    """The age (s) of the first frame a new viewer of `camera` gets."""
    client = MjpegClient(f"{gateway.url}/stream/{camera}", timeout=timeout)
    try:
        return client.part().age_seconds
    finally:
        client.close()


# The stage's workers take tests from the front and steal from each other's queues: the
# longest first, or the ten-minute schedule, started last, holds the stage for its length.
LONGEST_FIRST = ("test_fault_schedule.py", "test_freezes.py", "test_soak.py")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    def rank(item: pytest.Item) -> int:
        name = item.path.name
        return LONGEST_FIRST.index(name) if name in LONGEST_FIRST else len(LONGEST_FIRST)

    items.sort(key=rank)
