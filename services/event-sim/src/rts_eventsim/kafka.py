"""event-sim's producer: its configuration, delivery semantics and delivery accounting.

Delivery: at least once, without duplicates, in order per session. The producer is
idempotent (the broker drops a retried batch it already has, and keeps the order of a
partition across retries) and waits for every in-sync replica (`acks=all`), retrying
until `delivery_timeout_ms`; only then is an event counted lost, by error. Records are
keyed by session id, so a session's events share a partition and arrive in order.
Throughput comes from batching (`linger_ms`, `batch_bytes`) and lz4/zstd compression:
JSON events shrink several times.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Producer
from rts_common.contracts import PLAYBACK_EVENTS
from rts_common.events import EVENT_TYPES, EventType
from rts_common.kafka import DeliveryReports, authentication_failed
from rts_common.logs import Throttle
from rts_common.tasks import Heartbeat

from rts_eventsim.metrics import EventSimMetrics
from rts_eventsim.settings import EventSimSettings

log = logging.getLogger(__name__)


def producer_config(
    settings: EventSimSettings, on_error: Callable[[KafkaError], None]
) -> dict[str, Any]:
    return settings.client_config("event-sim") | {
        "enable.idempotence": True,
        "acks": "all",
        "compression.type": settings.compression,
        "linger.ms": settings.linger_ms,
        "batch.size": settings.batch_bytes,
        "batch.num.messages": 100_000,
        "queue.buffering.max.messages": settings.queue_messages,
        "delivery.timeout.ms": settings.delivery_timeout_ms,
        # The Java client's partitioner, so a session lands on the partition any Kafka
        # tool or JVM producer would pick for the same key.
        "partitioner": "murmur2_random",
        "error_cb": on_error,
    }


class Publisher:
    """Sends events and counts their delivery reports; its state is the service's readiness."""

    def __init__(self, settings: EventSimSettings, metrics: EventSimMetrics) -> None:
        self.topic = settings.topic_name(PLAYBACK_EVENTS)
        self._metrics = metrics
        self._reports = DeliveryReports()
        self.delivered = 0
        self.topic_found = False
        self.brokers_down = False
        self.fatal: KafkaError | None = None
        self.refused: str | None = None  # the cluster refused our credentials
        self._refusals = Throttle(60.0)
        self._producer = Producer(producer_config(settings, self._on_error))
        # The sending loop's liveness: it beats while sending and while it waits for the
        # broker (a long outage is a reason to be unready, not to be restarted).
        self.heartbeat = Heartbeat("event-loop", max_silence=60.0)
        self._waiting_log = Throttle(30.0)
        # One callback per event type: the delivery report then says the type without
        # parsing the value back.
        self._on_delivery = {t: self._delivery_callback(t) for t in EVENT_TYPES}

    @property
    def failed(self) -> int:
        return self._reports.failed

    def queued(self) -> int:
        return len(self._producer)

    def readiness(self) -> tuple[bool, dict[str, Any]]:
        details: dict[str, Any] = {"topic": self.topic, "queued": self.queued()}
        if self.fatal is not None:
            details["fatal"] = self.fatal.str()
        elif self.refused is not None:
            details["kafka_error"] = self.refused
        elif not self.topic_found:
            details["waiting"] = "for the topic's metadata"
        elif self.brokers_down:
            details["waiting"] = "for a broker"
        ready = (
            self.fatal is None
            and self.refused is None
            and self.topic_found
            and not self.brokers_down
        )
        return ready, details

    def wait_for_topic(self, stop: threading.Event, timeout: float = 5.0) -> bool:
        """Block until the topic has partitions (it is never auto-created), or `stop` is set."""
        while not stop.is_set():
            self.heartbeat.beat()
            problem = ""
            try:
                meta = self._producer.list_topics(self.topic, timeout=timeout).topics.get(
                    self.topic
                )
                if meta is not None and meta.error is None and meta.partitions:
                    self.topic_found = True
                    log.info(
                        "topic found",
                        extra={"topic": self.topic, "partitions": len(meta.partitions)},
                    )
                    return True
                problem = meta.error.str() if meta is not None and meta.error else "no partitions"
            except KafkaException as exc:
                problem = str(exc.args[0])
            # Client-level errors (refused credentials) reach error_cb only through poll().
            self._producer.poll(0)
            if self._waiting_log.allow(None):
                log.warning(
                    "waiting for the topic", extra={"topic": self.topic, "problem": problem}
                )
            stop.wait(1.0)
        return False

    def send(self, key: str, value: bytes, event_type: EventType, stop: threading.Event) -> bool:
        """Queue one event; wait while the producer's queue is full.

        False when it was not queued: `stop` came first, or the producer failed for good.
        """
        on_delivery = self._on_delivery[event_type]
        waited_from = 0.0
        queued = False
        while not queued and self.fatal is None:
            try:
                self._producer.produce(self.topic, value, key, on_delivery=on_delivery)
                queued = True
            except KafkaException as exc:
                self.fatal = exc.args[0]
                log.error("the producer refused an event", extra={"error": str(exc)})
            except BufferError:
                waited_from = waited_from or time.monotonic()
                if stop.is_set():
                    break
                # Serving delivery reports is what frees room in the queue.
                self._producer.poll(0.05)
                self.heartbeat.beat()
        if waited_from:
            self._metrics.backpressure_seconds.inc(time.monotonic() - waited_from)
        return queued

    def poll(self) -> None:
        self._producer.poll(0)

    def flush(self, timeout: float) -> int:
        """Wait for outstanding delivery reports; returns how many events are still unsent."""
        return int(self._producer.flush(timeout))

    def _delivery_callback(self, event_type: EventType) -> Callable[[KafkaError | None, Any], None]:
        delivered = self._metrics.events.labels(event_type=event_type)

        def on_delivery(err: KafkaError | None, msg: Any) -> None:
            if err is None:
                self.delivered += 1
                delivered.inc()
                self.brokers_down = False
                return
            self._reports.on_delivery(err, msg)
            self._metrics.delivery_errors.labels(error=err.name()).inc()

        return on_delivery

    def _on_error(self, err: KafkaError) -> None:
        """librdkafka's client-level errors; most are transient and retried by it."""
        refused = authentication_failed(err)
        if refused is not None:
            self.refused = refused
            if self._refusals.allow(None):
                log.error(refused)
        elif err.fatal():
            # An idempotent producer that lost its guarantees (e.g. fenced) stops for good.
            self.fatal = err
            log.error("fatal producer error", extra={"error": err.str()})
        elif err.code() == KafkaError._ALL_BROKERS_DOWN:
            self.brokers_down = True
            log.warning("all brokers are down", extra={"error": err.str()})
        else:
            log.debug("producer error", extra={"error": err.str()})
