"""The notifier's composition root and its consumer loop.

Kafka: `video-detections` in the consumer group `--group-id` (cooperative-sticky, no
auto-commit: offsets are committed by `Offsets`, after delivery), starting at the newest
record when the group is new (a notifier started today must not push yesterday);
dead letters through an idempotent producer (acks=all). One replica: events are tracked
in memory, so two replicas would each see half of a camera's story only when the camera's
partition moves; the chart runs one.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition
from rts_common.contracts import DEAD_LETTERS, VIDEO_DETECTIONS, BadMessage, DeadLetter
from rts_common.kafka import authentication_failed
from rts_common.lifecycle import shutdown_event
from rts_common.logs import Throttle
from rts_common.ops import OpsServer
from rts_common.tasks import Heartbeat

from rts_notifier.dispatch import Dispatcher, Offsets, Source
from rts_notifier.metrics import NotifierMetrics
from rts_notifier.receivers import DeliveryError, Mqtt, Receiver, Webhook
from rts_notifier.rules import Message, Tracker, parse_rules
from rts_notifier.settings import NotifierSettings

log = logging.getLogger("notifier")

COMMIT_EVERY = 2.0
SWEEP_EVERY = 1.0


def consumer_config(settings: NotifierSettings) -> dict[str, Any]:
    return settings.client_config("notifier") | {
        "group.id": settings.group_id,
        "enable.auto.commit": False,
        "auto.offset.reset": "latest",
        "partition.assignment.strategy": "cooperative-sticky",
    }


def producer_config(settings: NotifierSettings) -> dict[str, Any]:
    return settings.client_config("notifier-dead-letters") | {
        "enable.idempotence": True,
        "acks": "all",
        "linger.ms": 5,
    }


def receivers(settings: NotifierSettings) -> list[Receiver]:
    found: list[Receiver] = [
        Webhook(i, url, settings.webhook_secret.get_secret_value(), settings.webhook_timeout)
        for i, url in enumerate(settings.webhook_urls, start=1)
    ]
    if settings.mqtt_host:
        found.append(
            Mqtt(
                settings.mqtt_host,
                settings.mqtt_port,
                settings.mqtt_topic_prefix,
                settings.mqtt_username,
                settings.mqtt_password.get_secret_value(),
            )
        )
    return found


class Notifier:
    """Reads detections, tracks events, hands messages to every receiver's dispatcher,
    and commits what was delivered."""

    def __init__(self, settings: NotifierSettings, metrics: NotifierMetrics) -> None:
        self.settings = settings
        self.metrics = metrics
        self.topic = settings.topic_name(VIDEO_DETECTIONS)
        self.dead_letters_topic = settings.topic_name(DEAD_LETTERS)
        self.offsets = Offsets()
        self.tracker = Tracker(
            parse_rules(settings.rules),
            gap=settings.event_gap,
            gateway_url=settings.gateway_url,
            max_per_minute=settings.max_events_per_minute,
            on_rate_limited=lambda camera: metrics.rate_limited(camera).inc(),
        )
        self.kafka_error = ""
        self._warnings = Throttle(30.0)
        self.consumer = Consumer(consumer_config(settings) | {"error_cb": self._on_error})
        self.producer = Producer(producer_config(settings) | {"error_cb": self._on_error})
        self.dispatchers = [
            Dispatcher(
                receiver,
                self.offsets,
                metrics,
                self._dead_letter,
                queue_max=settings.queue_max,
                retry_first=settings.retry_first,
                retry_max=settings.retry_max,
                max_attempts=settings.max_attempts,
            )
            for receiver in receivers(settings)
        ]
        self.assigned: set[int] = set()
        self.heartbeat = Heartbeat("consumer-loop", max_silence=60.0)
        self._paused = False

    # -- Kafka callbacks (from poll, on the loop's thread)

    def _on_error(self, err: KafkaError) -> None:
        refused = authentication_failed(err)
        self.kafka_error = refused or err.str()
        if self._warnings.allow(err.code()):
            log.warning(refused or f"kafka: {err.str()}")

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self.assigned |= {p.partition for p in partitions}
        self.kafka_error = ""
        log.info("partitions assigned", extra={"partitions": sorted(self.assigned)})

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self.commit()
        gone = [p.partition for p in partitions]
        self.assigned -= set(gone)
        self.offsets.forget(gone)

    # -- the loop

    def run(self, stop: threading.Event) -> None:
        for dispatcher in self.dispatchers:
            dispatcher.start()
        self.consumer.subscribe(
            [self.topic],
            on_assign=self._on_assign,
            on_revoke=self._on_revoke,
            on_lost=self._on_revoke,
        )
        committed = swept = time.monotonic()
        while not stop.is_set():
            self.heartbeat.beat()
            self._pace()
            record = self.consumer.poll(0.2)
            if record is not None:
                self.handle(record)
            now = time.monotonic()
            if now - swept >= SWEEP_EVERY:
                swept = now
                self.dispatch(self.tracker.sweep(time.time_ns()), None)
            if now - committed >= COMMIT_EVERY:
                committed = now
                self.commit()
            self.producer.poll(0)

    def _pace(self) -> None:
        """Stop reading while a receiver's queue is full (its backlog waits in Kafka,
        nothing is dropped); go on when it has room again."""
        full = any(d.full for d in self.dispatchers)
        if full == self._paused:
            return
        assignment = self.consumer.assignment()
        if full:
            self.consumer.pause(assignment)
        else:
            self.consumer.resume(assignment)
        self._paused = full

    def handle(self, record: Any) -> None:
        if record.error() is not None:
            if record.error().code() != KafkaError._PARTITION_EOF:
                self._on_error(record.error())
            return
        self.metrics.records.inc()
        source = Source(record.partition(), record.offset(), record.key(), record.value())
        try:
            detection = VIDEO_DETECTIONS.decode(record.key(), record.value(), record.headers())
        except BadMessage as exc:
            self.metrics.bad_records.labels(reason=exc.reason).inc()
            self.offsets.read(source.partition, source.offset, 0)
            return
        messages = self.tracker.on_detection(detection)
        self.offsets.read(source.partition, source.offset, len(messages) * len(self.dispatchers))
        self.dispatch(messages, source)

    def dispatch(self, messages: list[Message], source: Source | None) -> None:
        for message in messages:
            self.metrics.events(message.type, message.after.label).inc()
            log.info(
                "event",
                extra={
                    "type": message.type,
                    "camera": message.after.camera,
                    "label": message.after.label,
                    "zones": message.after.entered_zones,
                    "id": message.after.id,
                },
            )
            for dispatcher in self.dispatchers:
                dispatcher.put(message, source)

    def commit(self) -> None:
        offsets = [
            TopicPartition(self.topic, partition, offset)
            for partition, offset in self.offsets.committable().items()
            if partition in self.assigned
        ]
        self.metrics.lag_offsets.set(self.offsets.owed())
        if not offsets:
            return
        try:
            self.consumer.commit(offsets=offsets, asynchronous=False)
        except Exception as exc:  # noqa: BLE001 - a rebalance under way: the next commit
            if self._warnings.allow("commit"):
                log.warning("offset commit failed; retried at the next", extra={"error": str(exc)})

    def _dead_letter(
        self,
        source: Source,
        receiver: Receiver,
        message: Message,
        error: DeliveryError,
        attempts: int,
    ) -> None:
        letter = DeadLetter(
            reason="undeliverable",
            detail=(
                f"{receiver.where}: {error.detail} ({error.reason}) after {attempts} "
                f"attempt(s); event {message.after.id} {message.type}"
            ),
            topic=self.topic,
            partition=source.partition,
            offset=source.offset,
            key=source.key,
            value=source.value,
        )
        self.producer.produce(
            self.dead_letters_topic, letter.value, key=letter.key, headers=letter.headers()
        )
        self.producer.poll(0)

    def readiness(self) -> tuple[bool, dict[str, Any]]:
        ready = bool(self.assigned) and not self.kafka_error
        details: dict[str, Any] = {
            "partitions": sorted(self.assigned),
            "receivers": {d.receiver.name: d.backlog for d in self.dispatchers},
        }
        if self.kafka_error:
            details["kafka_error"] = self.kafka_error
        return ready, details

    def stop(self, timeout: float) -> None:
        """Finish the deliveries under way (up to `timeout`), commit, close."""
        deadline = time.monotonic() + timeout
        for dispatcher in self.dispatchers:
            dispatcher.drain(max(0.0, deadline - time.monotonic()))
        self.heartbeat.done()
        for dispatcher in self.dispatchers:
            dispatcher.stop()
        self.commit()
        self.consumer.close()
        self.producer.flush(5)


def run(settings: NotifierSettings) -> int:
    """Notify until SIGTERM/SIGINT; the process's exit code."""
    stop = shutdown_event()
    metrics = NotifierMetrics()
    notifier = Notifier(settings, metrics)
    log.info(
        "starting",
        extra={
            "rules": settings.rules,
            "receivers": [d.receiver.where for d in notifier.dispatchers],
        },
    )
    if not notifier.dispatchers:
        log.warning("no receiver configured (--webhooks, --mqtt-host): events are only logged")
    try:
        ops = OpsServer(
            metrics.registry,
            notifier.readiness,
            settings.ops_host,
            settings.ops_port,
            components=lambda: [notifier.heartbeat, *(d.heartbeat for d in notifier.dispatchers)],
        ).start()
    except OSError as exc:
        log.error("cannot serve /metrics on port %s: %s", settings.ops_port, exc)
        return 1
    try:
        notifier.run(stop)
    finally:
        notifier.stop(settings.shutdown_timeout)
        ops.stop()
        log.info("notifier stopped")
    return 0
