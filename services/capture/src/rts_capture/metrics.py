"""Every Prometheus instrument of capture, in its own registry.

Names follow DESIGN.md §6. One process captures one camera, so the `camera` label has
one value per process; it is there so dashboards can sum and join across cameras.
"""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info
from rts_common.contracts import DETECTION_KINDS
from rts_common.metrics import DURATION_BUCKETS, LATENCY_BUCKETS, SIZE_BUCKETS, service_registry

# Bounded label values, created up front so every series exists (rate() of an absent
# series is no series, and alerts on it never fire).
DROP_REASONS = ("behind", "queue_full", "too_large", "encode_error", "produce_error")
SOURCE_FAILURES = ("open_failed", "read_failed", "stalled")
DETECTORS = ("motion", "face", "person")
REDUCTIONS = ("quality", "size")


class _ByTopic:
    """Adapts a {camera, topic} counter to DeliveryReports, which labels by topic only."""

    def __init__(self, counter: Counter, camera: str) -> None:
        self._counter = counter
        self._camera = camera

    def labels(self, *, topic: str) -> Any:
        return self._counter.labels(camera=self._camera, topic=topic)


class CaptureMetrics:
    def __init__(self, camera: str, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or service_registry("capture")
        r, cam = self.registry, {"camera": camera}
        self.source_info = Info(
            "capture_source",
            "What this process captures (kind of source)",
            ["camera"],
            registry=r,
        )
        self.source_up = Gauge(
            "capture_source_up",
            "1 while the source delivers frames, 0 while it is lost",
            ["camera"],
            registry=r,
        ).labels(**cam)
        self.source_frames = Counter(
            "capture_source_frames",
            "Frames read from the source (before the --fps cap)",
            ["camera"],
            registry=r,
        ).labels(**cam)
        self._source_failures = Counter(
            "capture_source_failures",
            "Source failures by reason: open_failed, read_failed (stream ended or broke), "
            "stalled (no frame within --stall-timeout)",
            ["camera", "reason"],
            registry=r,
        )
        self.source_reopens = Counter(
            "capture_source_reopens", "Attempts to reopen a lost source", ["camera"], registry=r
        ).labels(**cam)
        self.frames = Counter(
            "capture_frames", "Frames handed to the Kafka producer", ["camera"], registry=r
        ).labels(**cam)
        self._dropped = Counter(
            "capture_frames_dropped",
            "Captured frames not sent, by reason: behind (the next frame arrived before this "
            "one was encoded), queue_full (producer queue), too_large, encode_error, "
            "produce_error",
            ["camera", "reason"],
            registry=r,
        )
        self._reduced = Counter(
            "capture_frames_reduced",
            "Frames re-encoded to fit the topic's message size: at lower quality or smaller",
            ["camera", "how"],
            registry=r,
        )
        self.encode_seconds = Histogram(
            "capture_encode_seconds",
            "Time to scale and JPEG-encode one frame",
            ["camera"],
            buckets=DURATION_BUCKETS,
            registry=r,
        ).labels(**cam)
        self.frame_bytes = Histogram(
            "capture_frame_bytes",
            "Size of the JPEG frames sent",
            ["camera"],
            buckets=SIZE_BUCKETS,
            registry=r,
        ).labels(**cam)
        self.frame_width = Gauge(
            "capture_frame_width_pixels", "Width of the last frame sent", ["camera"], registry=r
        ).labels(**cam)
        self.frame_height = Gauge(
            "capture_frame_height_pixels",
            "Height of the last frame sent",
            ["camera"],
            registry=r,
        ).labels(**cam)
        self.delivery_seconds = Histogram(
            "capture_delivery_seconds",
            "Capture time to the broker's acknowledgement of the frame",
            ["camera"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        ).labels(**cam)
        delivered = Counter(
            "capture_kafka_delivered",
            "Records the broker acknowledged",
            ["camera", "topic"],
            registry=r,
        )
        failed = Counter(
            "capture_kafka_delivery_failures",
            "Records that failed delivery (timed out or rejected)",
            ["camera", "topic"],
            registry=r,
        )
        self.delivered = _ByTopic(delivered, camera)
        self.delivery_failures = _ByTopic(failed, camera)
        self.producer_queue = Gauge(
            "capture_producer_queue_records",
            "Records waiting in the producer's queue",
            ["camera"],
            registry=r,
        ).labels(**cam)
        self._detections = Counter(
            "capture_detections",
            "Detection results published, by kind (an empty result clears boxes once)",
            ["camera", "kind"],
            registry=r,
        )
        self._detect_seconds = Histogram(
            "capture_detect_seconds",
            "Time one detector takes on one frame",
            ["camera", "kind"],
            buckets=DURATION_BUCKETS,
            registry=r,
        )
        self.detect_skipped = Counter(
            "capture_detect_skipped",
            "Frames the detectors skipped because they were still busy with an earlier one",
            ["camera"],
            registry=r,
        ).labels(**cam)
        self.detections_dropped = Counter(
            "capture_detections_dropped",
            "Detection results not sent (producer queue full, or produce failed)",
            ["camera"],
            registry=r,
        ).labels(**cam)
        self.detect_errors = Counter(
            "capture_detect_errors", "Detector runs that raised an error", ["camera"], registry=r
        ).labels(**cam)
        self._camera = camera
        for reason in DROP_REASONS:
            self.dropped(reason)
        for reason in SOURCE_FAILURES:
            self.source_failure(reason)
        for how in REDUCTIONS:
            self.reduced(how)
        for kind in DETECTION_KINDS:
            self.detections(kind)
        for detector in DETECTORS:
            self.detect_seconds(detector)

    def dropped(self, reason: str) -> Counter:
        return self._dropped.labels(camera=self._camera, reason=reason)

    def source_failure(self, reason: str) -> Counter:
        return self._source_failures.labels(camera=self._camera, reason=reason)

    def reduced(self, how: str) -> Counter:
        return self._reduced.labels(camera=self._camera, how=how)

    def detections(self, kind: str) -> Counter:
        return self._detections.labels(camera=self._camera, kind=kind)

    def detect_seconds(self, kind: str) -> Histogram:
        return self._detect_seconds.labels(camera=self._camera, kind=kind)
