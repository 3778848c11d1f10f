"""Capture's producer: frames and detections to Kafka, tuned for live video.

Delivery semantics: at most once, in order, never late. A frame is worth showing now or
never, so the producer does not wait to batch (linger 2 ms), does not compress (JPEG
already is), waits for the partition leader only (acks=1: a frame lost in a leader
failover is one skipped frame, while acks=all would add a replication round trip to
every frame), and gives up on a frame after --message-timeout seconds instead of
librdkafka's 5 minutes, so a broker outage never ends in a burst of stale video. One
request in flight per broker keeps a camera's frames in order across retries without
idempotence (which would force acks=all). The queue is bounded (--queue-max-frames):
when the broker cannot keep up, produce() fails at once with BufferError and the frame
is dropped and counted; the capture loop never blocks on Kafka.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from confluent_kafka import KafkaError, Producer
from rts_common.contracts import (
    FRAME_TOPIC_MAX_MESSAGE_BYTES,
    VIDEO_CAMERAS,
    VIDEO_DETECTIONS,
    VIDEO_FRAMES,
    CameraStatus,
    Detection,
    FrameMeta,
)
from rts_common.kafka import DeliveryReports, KafkaSettings, authentication_failed
from rts_common.logs import Throttle
from rts_common.tasks import PeriodicTask

from rts_capture.metrics import CaptureMetrics
from rts_capture.settings import CaptureSettings

log = logging.getLogger(__name__)

LOG_EVERY = 30.0  # seconds between repeated log lines about the same Kafka problem


def producer_config(settings: CaptureSettings) -> dict[str, Any]:
    return settings.client_config(f"capture-{settings.camera}") | {
        "linger.ms": 2,
        "compression.type": "none",
        "acks": 1,
        "enable.idempotence": False,
        "max.in.flight.requests.per.connection": 1,
        "message.timeout.ms": round(settings.message_timeout * 1000),
        # A frame inside a request the broker never answers only times out with the
        # request: keep that within the message timeout too (librdkafka's default is 30 s).
        "request.timeout.ms": round(settings.message_timeout * 1000),
        "queue.buffering.max.messages": settings.queue_max_frames,
        # The record count is the bound that matters; this only has to stay above it.
        "queue.buffering.max.kbytes": settings.queue_max_frames * 4096,
        # librdkafka refuses records over 1 MB by default; the topic takes 4 MiB.
        "message.max.bytes": FRAME_TOPIC_MAX_MESSAGE_BYTES,
        "socket.nagle.disable": True,
    }


class Publisher:
    """Sends frames and detections without ever blocking; counts what it could not send."""

    def __init__(
        self,
        producer: Any,
        settings: KafkaSettings,
        camera: str,
        metrics: CaptureMetrics,
    ) -> None:
        self._producer = producer
        self._camera = camera
        self._metrics = metrics
        self.frames_topic = settings.topic_name(VIDEO_FRAMES)
        self.detections_topic = settings.topic_name(VIDEO_DETECTIONS)
        self.cameras_topic = settings.topic_name(VIDEO_CAMERAS)
        # What the camera's status announces (status.py); written by the capture loop and
        # the delivery-report thread, read by the announcer: single values, no lock needed.
        self.frames_sent = 0
        self.last_size: tuple[int, int] | None = None
        self.last_frame_ts: int | None = None
        self.frames_partition: int | None = None
        self.reports = DeliveryReports(metrics.delivered, metrics.delivery_failures)
        # None until the first delivery report: not known to be failing yet.
        self.kafka_ok: bool | None = None
        self._kafka_error = ""
        # The cluster refused our credentials: said above any later symptom of it.
        self._refused: str | None = None
        self._warnings = Throttle(LOG_EVERY)
        # Delivery reports are served by poll(): from a thread of their own, they are
        # timely (the latency histogram means what it says) whatever the capture loop does.
        self.poller = PeriodicTask("kafka-poll", 0.0, self._poll, first_delay=0.0)
        self._events: list[Detection] = []
        self._events_lock = threading.Lock()

    @classmethod
    def create(cls, settings: CaptureSettings, metrics: CaptureMetrics) -> Publisher:
        publisher: Publisher
        # librdkafka calls error_cb from poll(), after the publisher exists.
        config = producer_config(settings) | {
            "error_cb": lambda err: publisher.on_error(err)  # noqa: PLW0108
        }
        publisher = cls(Producer(config), settings, settings.camera, metrics)
        return publisher

    def send_frame(self, meta: FrameMeta, jpeg: bytes) -> bool:
        try:
            self._producer.produce(
                self.frames_topic,
                jpeg,
                key=self._camera,
                headers=meta.headers(jpeg),
                # Replay looks frames up by time (offsets_for_times): the record's
                # timestamp must be the capture time, not the time it was sent.
                timestamp=meta.ts_ns // 1_000_000,
                on_delivery=self._on_frame_delivery,
            )
        except BufferError:
            self._metrics.dropped("queue_full").inc()
            self._warn("queue_full", "producer queue full; dropping frames")
            return False
        except Exception as exc:  # noqa: BLE001 - KafkaException and bad arguments alike
            self._metrics.dropped("produce_error").inc()
            self._warn("produce_error", f"produce failed: {exc}")
            return False
        self._metrics.frames.inc()
        self._metrics.frame_bytes.observe(len(jpeg))
        self.frames_sent += 1
        self.last_size = (meta.width, meta.height)
        return True

    def send_status(self, status: CameraStatus) -> bool:
        try:
            self._producer.produce(
                self.cameras_topic,
                status.model_dump_json(),
                key=self._camera,
                on_delivery=self.reports.on_delivery,
            )
        except (BufferError, Exception) as exc:  # noqa: BLE001 - the next one follows soon
            self._warn("status_produce_error", f"camera status not sent: {exc}")
            return False
        return True

    def send_detection(self, detection: Detection) -> bool:
        try:
            self._producer.produce(
                self.detections_topic,
                detection.model_dump_json(),
                key=self._camera,
                timestamp=detection.ts // 1_000_000,
                on_delivery=self.reports.on_delivery,
            )
        except BufferError:
            self._metrics.detections_dropped.inc()
            self._warn("detections_queue_full", "producer queue full; dropping detections")
            return False
        except Exception as exc:  # noqa: BLE001
            self._metrics.detections_dropped.inc()
            self._warn("detections_produce_error", f"produce failed: {exc}")
            return False
        return True

    def send_event(self, detection: Detection) -> None:
        """A detection that must arrive (the source going offline or coming back): what
        the producer refuses or gives up on is sent again from the poll thread."""
        with self._events_lock:
            self._events.append(detection)

    def _send_events(self) -> None:
        with self._events_lock:
            pending, self._events = self._events, []
        for detection in pending:

            def delivered(
                err: KafkaError | None, msg: Any, detection: Detection = detection
            ) -> None:
                self.reports.on_delivery(err, msg)
                if err is not None:
                    self.send_event(detection)

            try:
                self._producer.produce(
                    self.detections_topic,
                    detection.model_dump_json(),
                    key=self._camera,
                    timestamp=detection.ts // 1_000_000,
                    on_delivery=delivered,
                )
            except (BufferError, Exception):  # noqa: BLE001 - kept for the next round
                self.send_event(detection)

    def start(self) -> Publisher:
        self.poller.start()
        return self

    def _poll(self) -> None:
        if self._events:
            self._send_events()
        self._producer.poll(0.1)
        self._metrics.producer_queue.set(len(self._producer))

    def flush(self, timeout: float) -> int:
        """Wait up to `timeout` seconds for queued records; returns how many were left."""
        self.poller.stop(timeout=1.0)
        self._send_events()
        left = int(self._producer.flush(timeout))
        self._metrics.producer_queue.set(left)
        return left

    def on_error(self, err: KafkaError) -> None:
        """Client-wide errors (all brokers down, authentication): librdkafka keeps retrying."""
        refused = authentication_failed(err)
        if refused is not None:
            self.kafka_ok = False
            self._refused = refused
            if self._warnings.allow("authentication"):
                log.error(refused, extra={"camera": self._camera})
            return
        if err.code() == KafkaError._ALL_BROKERS_DOWN or err.fatal():
            self.kafka_ok = False
            self._kafka_error = err.str()
        self._warn(f"client:{err.code()}", f"kafka: {err.str()}")

    def _on_frame_delivery(self, err: KafkaError | None, msg: Any) -> None:
        self.reports.on_delivery(err, msg)
        if err is not None:
            self.kafka_ok = False
            self._kafka_error = err.str()
            return
        self.kafka_ok = True
        self._refused = None
        self.frames_partition = msg.partition()
        _kind, ts_ms = msg.timestamp()
        # The newest frame Kafka has (not merely queued here): what a gateway could read.
        self.last_frame_ts = max(self.last_frame_ts or 0, ts_ms * 1_000_000)
        self._metrics.delivery_seconds.observe(max(0.0, time.time() - ts_ms / 1000))

    def readiness(self) -> tuple[bool, dict[str, Any]]:
        ok = self.kafka_ok is not False
        details: dict[str, Any] = {"kafka": "ok" if ok else "failing"}
        if not ok:
            details["kafka_error"] = self._refused or self._kafka_error
        return ok, details

    def _warn(self, kind: str, message: str) -> None:
        if self._warnings.allow(kind):
            log.warning(message, extra={"camera": self._camera})
