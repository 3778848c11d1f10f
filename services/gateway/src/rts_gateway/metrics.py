"""Every Prometheus instrument of the gateway, in one registry (DESIGN.md §6).

Labels stay bounded: `camera` only takes ids the camera directory knows, never a value
from a request path; never a user, session or client id.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from rts_common.metrics import LATENCY_BUCKETS, SIZE_BUCKETS, service_registry


class GatewayMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or service_registry("gateway")
        r = self.registry
        # Video
        self.frame_latency = Histogram(
            "gateway_frame_latency_seconds",
            "Capture time (frame header ts) to the frame being written to a viewer",
            ["camera"], buckets=LATENCY_BUCKETS, registry=r,
        )  # fmt: skip
        self.frames_received = Counter(
            "gateway_frames_received_total", "Frames read from Kafka", ["camera"], registry=r
        )
        self.frames_sent = Counter(
            "gateway_frames_sent_total", "Frames written to MJPEG viewers", ["camera"], registry=r
        )
        self.frame_bytes_sent = Counter(
            "gateway_frame_bytes_sent_total", "JPEG bytes written to MJPEG viewers", registry=r
        )
        self.frames_skipped = Counter(
            "gateway_frames_skipped_total",
            "Frames a viewer did not get: slow_client (a newer frame replaced it), "
            "fps_cap (the viewer asked for fewer)",
            ["reason"], registry=r,
        )  # fmt: skip
        self.frame_size = Histogram(
            "gateway_frame_bytes", "Size of frames read from Kafka", buckets=SIZE_BUCKETS,
            registry=r,
        )  # fmt: skip
        self.viewers = Gauge("gateway_mjpeg_viewers", "Open MJPEG streams", ["camera"], registry=r)
        self.replays = Gauge("gateway_replay_viewers", "Open replay streams", registry=r)
        self.viewers_dropped = Counter(
            "gateway_viewers_dropped_total",
            "MJPEG viewers closed by the gateway (stalled: took no frame for too long)",
            ["reason"], registry=r,
        )  # fmt: skip
        self.camera_reads = Gauge(
            "gateway_camera_reads",
            "Cameras this pod reads from Kafka right now (at least one local viewer)",
            registry=r,
        )
        self.assignments = Counter(
            "gateway_partition_assignments_total",
            "Partitions this pod started reading on demand",
            ["topic"], registry=r,
        )  # fmt: skip
        # Kafka
        self.partitions_assigned = Gauge(
            "gateway_partitions_assigned", "Partitions assigned to this pod", ["topic"], registry=r
        )
        self.consumer_lag = Gauge(
            "gateway_consumer_lag", "Messages behind the partition's end", ["topic", "partition"],
            registry=r,
        )  # fmt: skip
        self.bad_messages = Counter(
            "gateway_bad_messages_total",
            "Records skipped for breaking their topic's contract",
            ["topic", "reason"], registry=r,
        )  # fmt: skip
        self.kafka_errors = Counter(
            "gateway_kafka_errors_total", "Errors reported by the Kafka client", ["code"],
            registry=r,
        )  # fmt: skip
        # The process
        self.loop_lag = Histogram(
            "gateway_event_loop_lag_seconds",
            "How late a 100 ms timer fires in the app context: how long something blocked "
            "every green thread (eventlet) or starved the dispatcher",
            buckets=LATENCY_BUCKETS, registry=r,
        )  # fmt: skip
        self.dispatch_backlog = Gauge(
            "gateway_dispatch_backlog",
            "Kafka batches handed from native threads and not yet processed",
            registry=r,
        )
        # Known label values start at zero, so rate() works from the first scrape and
        # dashboards show 0 rather than "no data".
        for reason in ("slow_client", "fps_cap"):
            self.frames_skipped.labels(reason=reason)
        self.viewers_dropped.labels(reason="stalled")
