"""Every Prometheus instrument of the latency probe, in its own registry."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from rts_common.metrics import LATENCY_BUCKETS, service_registry


@dataclass(frozen=True)
class ProbeMetrics:
    registry: CollectorRegistry
    frame_latency: Histogram
    frames: Counter
    stream_errors: Counter
    streams_open: Gauge
    cameras: Gauge

    @classmethod
    def create(cls) -> ProbeMetrics:
        registry = service_registry("latency-probe")
        return cls(
            registry=registry,
            frame_latency=Histogram(
                "probe_frame_latency_seconds",
                "Capture time (the part's X-Frame-Timestamp) to the probe receiving the frame "
                "through the gateway: what a viewer sees, measured without one",
                ["camera"],
                buckets=LATENCY_BUCKETS,
                registry=registry,
            ),
            frames=Counter(
                "probe_frames",
                "New frames received (re-sent keep-alive frames excluded)",
                ["camera"],
                registry=registry,
            ),
            stream_errors=Counter(
                "probe_stream_errors",
                "Streams that failed or ended, by reason (http_<status>, timeout, "
                "connection, protocol, ended)",
                ["camera", "reason"],
                registry=registry,
            ),
            streams_open=Gauge(
                "probe_streams_open", "Streams the probe holds open now", registry=registry
            ),
            cameras=Gauge(
                "probe_cameras", "Cameras in the gateway's latest list", registry=registry
            ),
        )
