"""Every Prometheus instrument of event-sim, in its own registry."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge
from rts_common.events import EVENT_TYPES
from rts_common.metrics import service_registry


@dataclass(frozen=True)
class EventSimMetrics:
    registry: CollectorRegistry
    events: Counter
    delivery_errors: Counter
    queued: Gauge
    backpressure_seconds: Counter
    ticks_skipped: Counter
    lag_seconds: Gauge
    target_rate: Gauge
    sessions_active: Gauge
    sessions_started: Counter
    viewer_pace: Gauge

    @classmethod
    def create(cls) -> EventSimMetrics:
        registry = service_registry("event-sim")
        events = Counter(
            "eventsim_events",
            "Events the broker acknowledged, by type",
            ["event_type"],
            registry=registry,
        )
        for event_type in EVENT_TYPES:
            events.labels(event_type=event_type)  # export zeros, so rate() works from start
        return cls(
            registry=registry,
            events=events,
            delivery_errors=Counter(
                "eventsim_delivery_errors",
                "Events the producer gave up on, by librdkafka error name",
                ["error"],
                registry=registry,
            ),
            queued=Gauge(
                "eventsim_producer_queue_messages",
                "Events (and librdkafka requests) in the producer's queue, not yet acknowledged",
                registry=registry,
            ),
            backpressure_seconds=Counter(
                "eventsim_backpressure_seconds",
                "Time the simulation waited because the producer's queue was full",
                registry=registry,
            ),
            ticks_skipped=Counter(
                "eventsim_ticks_skipped",
                "Events the paced run could not send in time and skipped (the process or the "
                "broker could not keep up with --rate)",
                registry=registry,
            ),
            lag_seconds=Gauge(
                "eventsim_lag_seconds",
                "Wall clock minus the simulated time of the last event sent (paced runs)",
                registry=registry,
            ),
            target_rate=Gauge(
                "eventsim_target_rate", "Requested events per second (--rate)", registry=registry
            ),
            sessions_active=Gauge(
                "eventsim_sessions_active", "Sessions started and not stopped", registry=registry
            ),
            sessions_started=Counter(
                "eventsim_sessions_started", "Sessions started", registry=registry
            ),
            viewer_pace=Gauge(
                "eventsim_viewer_pace",
                "Viewer seconds per simulated second: 1 is lifelike; above 1 there are too "
                "few --users for --rate and viewers act busier than in life",
                registry=registry,
            ),
        )
