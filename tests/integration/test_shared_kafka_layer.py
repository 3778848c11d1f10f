"""The shared Kafka helpers against the real broker: keys, headers, delivery reports."""

import json
import time
import uuid

from confluent_kafka import Consumer, Producer
from rts_common.contracts import PLAYBACK_EVENTS, VIDEO_FRAMES, FrameMeta, check_jpeg
from rts_common.events import PlaybackEvent
from rts_common.kafka import DeliveryReports

from tests.fixtures.kafka import KafkaUnderTest

JPEG = b"\xff\xd8" + bytes(range(256)) * 40 + b"\xff\xd9"


def _consume(kafka: KafkaUnderTest, topic: str, count: int, timeout: float = 20.0) -> list:
    consumer = Consumer(
        kafka.settings().client_config("test-consumer")
        | {"group.id": f"test-{uuid.uuid4()}", "auto.offset.reset": "earliest"}
    )
    consumer.subscribe([topic])
    messages = []
    deadline = time.monotonic() + timeout
    try:
        while len(messages) < count and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is not None and msg.error() is None:
                messages.append(msg)
    finally:
        consumer.close()
    return messages


def test_frames_travel_with_key_headers_and_delivery_reports(
    kafka: KafkaUnderTest, topic_prefix: str
) -> None:
    settings = kafka.settings(topic_prefix)
    topic = settings.topic_name(VIDEO_FRAMES)
    reports = DeliveryReports()
    producer = Producer(settings.client_config("test-capture"))
    sent = [FrameMeta("cam-a", seq, time.time_ns(), 64, 48) for seq in range(20)]
    for meta in sent:
        producer.produce(
            topic, JPEG, key=meta.camera, headers=meta.headers(), on_delivery=reports.on_delivery
        )
    assert producer.flush(15) == 0
    assert (reports.delivered, reports.failed) == (20, 0)

    received = _consume(kafka, topic, 20)
    metas = [FrameMeta.from_record(m.key(), m.headers()) for m in received]
    assert metas == sent  # one key, so one partition, so in order
    assert {m.partition() for m in received} == {received[0].partition()}
    assert all(check_jpeg(m.value()) == JPEG for m in received)


def test_events_keyed_by_session_stay_in_order_per_session(
    kafka: KafkaUnderTest, topic_prefix: str
) -> None:
    settings = kafka.settings(topic_prefix)
    topic = settings.topic_name(PLAYBACK_EVENTS)
    reports = DeliveryReports()
    producer = Producer(settings.client_config("test-sim") | {"enable.idempotence": True})
    sessions = [f"s-{i}" for i in range(12)]
    for step in range(5):
        for session in sessions:
            event = PlaybackEvent(
                event_id=f"{session}-{step}",
                user_id="u",
                movie_id="MOV001",
                event_type="play",
                position_seconds=step * 10.0,
                bitrate_kbps=2400,
                device="web",
                ts="2026-11-22T03:00:00Z",
                session_id=session,
            )
            producer.produce(
                topic, event.model_dump_json(), key=session, on_delivery=reports.on_delivery
            )
    assert producer.flush(15) == 0
    assert reports.delivered == 60

    received = _consume(kafka, topic, 60)
    assert len(received) == 60
    by_session: dict[str, list[float]] = {}
    partition_of: dict[str, set[int]] = {}
    for msg in received:
        event = PlaybackEvent.model_validate(json.loads(msg.value()))
        assert msg.key().decode() == event.session_id
        by_session.setdefault(event.session_id, []).append(event.position_seconds)
        partition_of.setdefault(event.session_id, set()).add(msg.partition())
    assert all(positions == [0, 10, 20, 30, 40] for positions in by_session.values())
    assert all(len(parts) == 1 for parts in partition_of.values())
    assert len({p for parts in partition_of.values() for p in parts}) > 1  # keys spread


def test_delivery_reports_count_failures_when_the_topic_does_not_exist(
    kafka: KafkaUnderTest,
) -> None:
    reports = DeliveryReports()
    producer = Producer(kafka.config(**{"message.timeout.ms": 2000}))
    producer.produce(f"missing-{uuid.uuid4()}", b"x", on_delivery=reports.on_delivery)
    producer.flush(10)
    assert (reports.delivered, reports.failed) == (0, 1)
    assert reports.last_error is not None
