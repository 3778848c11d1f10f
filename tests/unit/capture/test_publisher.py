import zlib
from typing import Any

import pytest
from confluent_kafka import KafkaError
from rts_capture.kafka import Publisher, producer_config
from rts_capture.metrics import CaptureMetrics
from rts_capture.reader import SourceHealth
from rts_capture.settings import CaptureSettings
from rts_capture.status import StatusAnnouncer
from rts_common.contracts import (
    FRAME_TOPIC_MAX_MESSAGE_BYTES,
    CameraStatus,
    Detection,
    FrameMeta,
)

from tests.unit.capture.conftest import sample

META = FrameMeta("cam", 3, 1_790_000_000_123_456_789, 640, 480)


class FakeProducer:
    """Records produce() calls; raises BufferError once `full` records are queued."""

    def __init__(self, full: int = 1000) -> None:
        self.records: list[dict[str, Any]] = []
        self.full = full

    def produce(self, topic: str, value: Any, **kwargs: Any) -> None:
        if len(self.records) >= self.full:
            raise BufferError("Local: Queue full")
        self.records.append({"topic": topic, "value": value, **kwargs})

    def __len__(self) -> int:
        return len(self.records)


class FakeMessage:
    def __init__(self, topic: str, ts_ms: int) -> None:
        self._topic, self._ts = topic, ts_ms

    def topic(self) -> str:
        return self._topic

    def timestamp(self) -> tuple[int, int]:
        return 1, self._ts

    def partition(self) -> int:
        return 2


def _publisher(producer: FakeProducer, metrics: CaptureMetrics) -> Publisher:
    settings = CaptureSettings.load(["--camera-id", "cam"], environ={"KAFKA_TOPIC_PREFIX": "p."})
    return Publisher(producer, settings, "cam", metrics)


def test_a_frame_is_sent_keyed_by_camera_with_headers_and_capture_timestamp(
    metrics: CaptureMetrics,
) -> None:
    producer = FakeProducer()
    assert _publisher(producer, metrics).send_frame(META, b"\xff\xd8jpeg\xff\xd9")
    record = producer.records[0]
    assert record["topic"] == "p.video-frames"
    assert record["key"] == "cam"
    assert record["timestamp"] == 1_790_000_000_123
    assert dict(record["headers"]) == {
        "seq": b"3",
        "ts": b"1790000000123456789",
        "w": b"640",
        "h": b"480",
        "crc": str(zlib.crc32(b"\xff\xd8jpeg\xff\xd9")).encode(),
    }
    assert sample(metrics, "capture_frames_total") == 1


def test_a_full_producer_queue_drops_the_frame_and_counts_it(metrics: CaptureMetrics) -> None:
    publisher = _publisher(FakeProducer(full=2), metrics)
    sent = [publisher.send_frame(META, b"x") for _ in range(5)]
    assert sent == [True, True, False, False, False]
    assert sample(metrics, "capture_frames_dropped_total", reason="queue_full") == 3
    assert sample(metrics, "capture_frames_total") == 2


def test_detections_go_to_their_topic_as_json(metrics: CaptureMetrics) -> None:
    producer = FakeProducer()
    detection = Detection(
        camera="cam",
        seq=3,
        ts=META.ts_ns,
        kind="face",
        boxes=[(1, 2, 3, 4)],
        score=1.5,
        width=640,
        height=480,
    )
    assert _publisher(producer, metrics).send_detection(detection)
    record = producer.records[0]
    assert record["topic"] == "p.video-detections"
    assert record["key"] == "cam"
    assert Detection.model_validate_json(record["value"]) == detection


def test_readiness_follows_the_last_delivery_report(metrics: CaptureMetrics) -> None:
    publisher = _publisher(FakeProducer(), metrics)
    assert publisher.readiness()[0]
    message = FakeMessage("p.video-frames", META.ts_ns // 1_000_000)
    publisher._on_frame_delivery(KafkaError(KafkaError._MSG_TIMED_OUT), message)
    ready, details = publisher.readiness()
    assert not ready
    assert details["kafka"] == "failing"
    assert sample(metrics, "capture_kafka_delivery_failures_total", topic="p.video-frames") == 1
    publisher._on_frame_delivery(None, message)
    assert publisher.readiness()[0]
    assert sample(metrics, "capture_kafka_delivered_total", topic="p.video-frames") == 1


@pytest.mark.parametrize(
    ("key", "value"),
    [("compression.type", "none"), ("acks", 1), ("max.in.flight.requests.per.connection", 1)],
)
def test_the_producer_is_tuned_for_live_video(key: str, value: object) -> None:
    config = producer_config(CaptureSettings.load(["--message-timeout", "3"], environ={}))
    assert config[key] == value
    assert config["message.timeout.ms"] == 3000
    assert config["message.max.bytes"] == FRAME_TOPIC_MAX_MESSAGE_BYTES
    assert config["linger.ms"] <= 5


def test_camera_status_announces_size_rate_and_partition(metrics: CaptureMetrics) -> None:
    producer = FakeProducer()
    publisher = _publisher(producer, metrics)
    health = SourceHealth(metrics, "cam", "test pattern")
    health.delivering()
    announcer = StatusAnnouncer(publisher, health, "cam", "test", interval=1.0)
    for _ in range(5):
        publisher.send_frame(META, b"\xff\xd8jpeg\xff\xd9")
    assert publisher.last_frame_ts is None  # queued is not published yet
    publisher._on_frame_delivery(None, FakeMessage("p.video-frames", 1_790_000_000_123))
    status = announcer.status()
    assert (status.camera, status.source, status.source_up) == ("cam", "test", True)
    assert (status.width, status.height, status.partition) == (640, 480, 2)
    assert status.frames == 5
    assert status.fps > 0
    assert status.last_frame_ts == 1_790_000_000_123 * 1_000_000  # the newest acknowledged
    announcer.stop()  # the last status says the source is down
    record = producer.records[-1]
    assert record["topic"] == "p.video-cameras"
    assert record["key"] == "cam"
    assert CameraStatus.model_validate_json(record["value"]).source_up is False
