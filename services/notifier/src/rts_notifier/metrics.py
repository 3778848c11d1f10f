"""Every Prometheus instrument of the notifier, in its own registry (DESIGN.md §6)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from rts_common.metrics import LATENCY_BUCKETS, Children, service_registry

RESULTS = ("ok", "unreachable", "timeout", "http_4xx", "http_5xx")


class NotifierMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or service_registry("notifier")
        r = self.registry
        self.records = Counter("notifier_records", "video-detections records read", registry=r)
        self.bad_records = Counter(
            "notifier_bad_records",
            "Records that broke their contract, by reason (skipped; the gateway dead-letters them)",
            ["reason"],
            registry=r,
        )
        self.events = Children(
            Counter(
                "notifier_events",
                "Event messages made, by type (new, update, end) and label",
                ["type", "label"],
                registry=r,
            )
        )
        self.rate_limited = Children(
            Counter(
                "notifier_rate_limited",
                "New events dropped by the per-camera limit (--max-events-per-minute)",
                ["camera"],
                registry=r,
            )
        )
        self.deliveries = Children(
            Counter(
                "notifier_deliveries",
                "Delivery attempts by receiver and result (ok, unreachable, timeout, http_<code>)",
                ["receiver", "result"],
                registry=r,
            )
        )
        self.delivery_seconds = Children(
            Histogram(
                "notifier_delivery_seconds",
                "Time of a successful delivery attempt",
                ["receiver"],
                buckets=LATENCY_BUCKETS,
                registry=r,
            )
        )
        self.dead_letters = Children(
            Counter(
                "notifier_dead_letters",
                "Deliveries given up on and written to dead-letters, by receiver",
                ["receiver"],
                registry=r,
            )
        )
        self.queued = Children(
            Gauge(
                "notifier_queue_messages", "Messages waiting per receiver", ["receiver"], registry=r
            )
        )
        self.lag_offsets = Gauge(
            "notifier_owed_records",
            "Records read whose deliveries are not finished (their offsets are not committed)",
            registry=r,
        )
