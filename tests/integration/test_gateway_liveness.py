"""Membership is liveness, on the real broker: a gateway whose playback-events consumer
cannot get into its group while Kafka answers says so on /healthz (503, naming the
consumer), in its metrics and once in its log, and is healthy again once it is in.

What holds it out is another process: a member of the same group that speaks only the
`range` assignor. Kafka refuses a member whose protocols share nothing with the group's
(INCONSISTENT_GROUP_PROTOCOL), so the gateway's cooperative-sticky member stays outside
for as long as the other one stays in, as a stray consumer of another application
sharing the group id would hold it."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator

import pytest
from confluent_kafka import Consumer

from tests.fixtures.kafka import KafkaUnderTest
from tests.fixtures.processes import ServiceGroup, kafka_env, start_gateway

LIVENESS_SECONDS = 5


class GroupHolder:
    """A member of `group` with an assignor the gateway does not speak, polled by a thread
    of its own until closed."""

    def __init__(self, kafka: KafkaUnderTest, group: str, topic: str) -> None:
        self.consumer = Consumer(
            kafka.config(**{"group.id": group, "partition.assignment.strategy": "range"})
        )
        self.consumer.subscribe([topic])
        self.assigned = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()

    def _poll(self) -> None:
        while not self._stop.is_set():
            self.consumer.poll(0.2)
            if self.consumer.assignment():
                self.assigned.set()

    def close(self) -> None:
        """Leave the group (the gateway's member may join from then on)."""
        self._stop.set()
        self._thread.join(10)
        self.consumer.close()


@pytest.fixture
def holder(kafka: KafkaUnderTest, topic_prefix: str) -> Iterator[GroupHolder]:
    held = GroupHolder(kafka, f"live-{topic_prefix}", topic_prefix + "playback-events")
    try:
        assert held.assigned.wait(60), "the holding member got no partitions"
        yield held
    finally:
        if not held._stop.is_set():
            held.close()


def test_a_consumer_held_outside_its_group_fails_liveness_until_it_is_in(
    kafka: KafkaUnderTest, topic_prefix: str, services: ServiceGroup, holder: GroupHolder
) -> None:
    env = kafka_env(kafka.bootstrap, topic_prefix, LOG_FORMAT="json")
    gateway = start_gateway(
        services,
        *f"--consumer-liveness-seconds {LIVENESS_SECONDS}".split(),
        env={**env, "GATEWAY_GROUP_ID": f"live-{topic_prefix}"},
    )

    def problems() -> dict[str, str]:
        status, body = gateway.get("/healthz")
        return json.loads(body).get("problems", {}) if status == 503 else {}

    gateway.wait_for(lambda: "events" in problems(), 120, "/healthz failing for events")
    status, body = gateway.get("/healthz")
    assert status == 503
    failing = json.loads(body)["problems"]
    assert failing["events"].startswith(f"outside its group live-{topic_prefix} for ")
    assert "while Kafka answers" in failing["events"]
    assert set(failing) == {"events"}, failing  # detections, frames... are fine
    gateway.wait_for(
        lambda: gateway.metric("gateway_component_up", component="events") == 0,
        10,
        "the events component down in the metrics",
    )
    gateway.wait_for(
        lambda: (
            gateway.metric("gateway_consumer_stalled_seconds", consumer="events") > LIVENESS_SECONDS
        ),
        10,
        "the events consumer's stall in the metrics",
    )
    assert gateway.metric("gateway_consumer_in_group", consumer="events") == 0
    assert gateway.metric("gateway_consumer_in_group", consumer="detections") == 1

    holder.close()
    took = gateway.wait_for(lambda: gateway.get("/healthz")[0] == 200, 60, "/healthz ok again")
    print(f"/healthz ok {took:.1f}s after the holding member left")
    topic = topic_prefix + "playback-events"
    gateway.wait_for(
        lambda: gateway.metric("gateway_partitions_assigned", topic=topic) == 3,
        10,
        "the events partitions taken over",
    )
    gateway.wait_for(
        lambda: gateway.metric("gateway_consumer_in_group", consumer="events") == 1,
        10,
        "the events consumer in its group in the metrics",
    )
    assert gateway.metric("gateway_consumer_stalled_seconds", consumer="events") == 0
    said = [r for r in gateway.log_records() if r.get("component") == "events"]
    assert [r["msg"] for r in said] == ["part not running", "part running again"], said
