"""The single broker goes away (frozen, stopped) and comes back, under load.

What must hold: no service exits; the gateway says "not ready" meanwhile and "ready" soon
after, and serves live video again by itself; every event event-sim sent is either
delivered (exactly once: the producer is idempotent) or reported failed; frames that
could not be delivered within capture's timeout are dropped, never delivered late.
"""

from __future__ import annotations

import time

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from tests.faults.conftest import FaultStack, MakeStack, fresh_frame_age

CAMERA = "cam-fault"


def _live(stack: FaultStack) -> tuple:  # type: ignore[type-arg]
    camera = stack.camera(CAMERA)
    gateway = stack.gateway("--release-after-seconds", "2")
    gateway.wait_ready(timeout=60)
    gateway.wait_for(lambda: fresh_frame_age(gateway, CAMERA) < 2.0, 60, "a live frame")
    return camera, gateway


def test_video_and_health_come_back_after_the_broker_froze_for_25_seconds(
    make_stack: MakeStack,
) -> None:
    stack = make_stack()
    camera, gateway = _live(stack)
    gateway.wait_for(
        lambda: gateway.metric("gateway_camera_reads") == 0,
        30,
        "the idle camera's partition let go",
    )
    stack.kafka.pause_node(1)
    started = time.monotonic()
    try:
        took = gateway.wait_for(lambda: not gateway.ready(), 20, "readiness to turn false")
        print(f"readiness false {took:.1f}s into the outage")
        # A viewer arrives while the broker cannot answer, and gives up: the gateway must
        # not be left with a read of that camera that never delivers.
        with pytest.raises(TimeoutError):
            fresh_frame_age(gateway, CAMERA, timeout=3.0)
        time.sleep(max(0.0, 25 - (time.monotonic() - started)))
    finally:
        stack.kafka.resume_node(1)
    resumed = time.monotonic()
    gateway.wait_for(gateway.ready, 60, "readiness again")
    ready_after = time.monotonic() - resumed
    gateway.wait_for(lambda: fresh_frame_age(gateway, CAMERA) < 2.0, 60, "live video")
    video_after = time.monotonic() - resumed
    received = gateway.metric("gateway_frames_received_total", camera=CAMERA)
    gateway.wait_for(
        lambda: gateway.metric("gateway_frames_received_total", camera=CAMERA) > received + 5,
        10,
        "frames flowing",
    )
    # Each consumer group is back too: the dashboard's events and detections. The frozen
    # node comes back fenced for a moment, which librdkafka may answer by forgetting the
    # broker (the gateway then gives that member a new client).
    groups_after = {}
    for consumer, topic in (("events", "playback-events"), ("detections", "video-detections")):
        gateway.wait_for(
            lambda c=consumer, t=topic: (
                gateway.metric("gateway_consumer_in_group", consumer=c) == 1
                and gateway.metric("gateway_partitions_assigned", topic=stack.prefix + t) == 3
            ),
            90,
            f"the {consumer} consumer back in its group with its partitions",
        )
        groups_after[consumer] = round(time.monotonic() - resumed, 1)
    print(
        f"after the broker resumed: ready in {ready_after:.1f}s, video in {video_after:.1f}s, "
        f"groups (s): {groups_after}"
    )
    assert gateway.get("/healthz")[0] == 200
    assert gateway.running, gateway.log()
    assert camera.running, camera.log()


def test_a_broker_stopped_for_30_seconds_under_load_loses_nothing_silently(
    make_stack: MakeStack,
) -> None:
    stack = make_stack()
    camera, gateway = _live(stack)
    sim = stack.event_sim("--rate", "300", "--users", "3000", "--seed", "15")
    sim.wait_for(lambda: sim.metric("eventsim_events_total") > 1000, 30, "events flowing")
    viewer_ages: list[float] = []

    stack.kafka.stop_node(1)
    stopped = time.time()
    took = gateway.wait_for(lambda: not gateway.ready(), 20, "readiness to turn false")
    print(f"gateway unready {took:.1f}s after the broker stopped")
    time.sleep(max(0.0, 30 - (time.time() - stopped)))
    stack.kafka.start_node(1)
    stack.kafka.wait_ready()
    restarted = time.time()

    ready_after = gateway.wait_for(gateway.ready, 60, "gateway readiness")
    video_after = gateway.wait_for(
        lambda: viewer_ages.append(fresh_frame_age(gateway, CAMERA)) or viewer_ages[-1] < 2.0,
        60,
        "live video",
    )
    print(
        f"after the broker came back: gateway ready in {ready_after:.1f}s, "
        f"live video in {ready_after + video_after:.1f}s"
    )
    for service in (camera, gateway, sim):
        assert service.running, f"{service.name} exited:\n{service.log()}"

    # Events: every one sent is delivered or reported failed, and what was delivered is
    # in the topic exactly once.
    code = sim.terminate(timeout=60)
    (finished,) = [r for r in sim.log_records() if r.get("msg") == "finished"]
    assert code == (0 if finished["failed"] == 0 else 1), sim.log()
    assert finished["sent"] == finished["delivered"] + finished["failed"] + finished["unsent"]
    assert finished["unsent"] == 0
    records = _count(stack, "playback-events")
    assert records == finished["delivered"], (records, finished)
    print(
        f"events: sent {finished['sent']}, delivered {finished['delivered']}, "
        f"failed {finished['failed']}"
    )

    # Frames: nothing captured while the broker was away for longer than capture's
    # timeout (3 s) was delivered after it came back.
    timeout = 3.0
    late = [
        ts for ts in _frame_times(stack) if stopped + timeout + 1 < ts < restarted - timeout - 1
    ]
    assert late == [], f"{len(late)} frames delivered later than capture's timeout"
    failures = camera.metric("capture_kafka_delivery_failures_total")
    assert failures > 0, "capture reported no failed frame while the broker was away"


def _count(stack: FaultStack, name: str) -> int:
    return len(_read_all(stack, name))


def _frame_times(stack: FaultStack) -> list[float]:
    return [msg.timestamp()[1] / 1000 for msg in _read_all(stack, "video-frames")]


def _read_all(stack: FaultStack, name: str) -> list:  # type: ignore[type-arg]
    topic = stack.prefix + name
    consumer = Consumer(
        {
            "bootstrap.servers": stack.kafka.bootstrap,
            "group.id": "faults-read",
            "enable.auto.commit": False,
        }
    )
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        ends = {
            p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
            for p in partitions
        }
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
        records, done = [], {p for p, end in ends.items() if end == 0}
        deadline = time.monotonic() + 60
        while len(done) < len(ends) and time.monotonic() < deadline:
            for msg in consumer.consume(1000, timeout=1.0):
                if msg.error() is None:
                    records.append(msg)
                    if msg.offset() + 1 >= ends[msg.partition()]:
                        done.add(msg.partition())
        return records
    finally:
        consumer.close()
