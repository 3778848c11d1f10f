"""The dashboard feed: playback events and detections, from the consumer group to Socket.IO.

Delivery semantics: replicas share `playback-events` in one consumer group
(cooperative-sticky) and `video-detections` in a second one, so each record is
processed once, by the replica that owns its partition. Two groups, because a sticky
assignor balances the total number of partitions, not each topic: with both topics in
one group, one replica could end up with every events partition and the other with
only detections. Offsets are stored after a batch is processed and committed
every few seconds (at-least-once: a crash re-counts a few seconds of events in the
aggregates of the replica that takes over; a rebalance does not, because librdkafka
commits the stored offsets of a partition before giving it up).

What a replica emits through the Kafka-backed Socket.IO manager, so that every browser
on every replica receives it:
- `new_event`: one playback event, as it came (the baseline's name and fields), at most
  `event_sample_rate` per second per replica; the rest are counted, not emitted;
- `qoe`: each owned partition's aggregate, once a second (see qoe.py);
- `detection`: every valid detection, as it arrives.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from typing import Any

from confluent_kafka import Consumer, KafkaError, Message, TopicPartition
from pydantic import ValidationError
from rts_common.contracts import Detection
from rts_common.events import PlaybackEvent, ts_to_ns
from rts_common.logs import Throttle
from rts_common.metrics import Children

from rts_gateway.kafka import ConsumerLoop
from rts_gateway.metrics import GatewayMetrics
from rts_gateway.qoe import ACTIVE_STATES, PartitionAggregate
from rts_gateway.runtime import Runtime

log = logging.getLogger(__name__)

Emit = Callable[[str, Any], None]


class TokenBucket:
    """At most `rate` per second on average, bursts up to one second's worth."""

    def __init__(self, rate: float) -> None:
        self.rate = rate
        self._tokens = rate
        self._at = time.monotonic()

    def take(self) -> bool:
        now = time.monotonic()
        self._tokens = min(self.rate, self._tokens + (now - self._at) * self.rate)
        self._at = now
        if self._tokens >= 1:
            self._tokens -= 1
            return True
        return False


class DashboardFeed:
    """App-context state fed by the group consumer; emits through `emit`."""

    def __init__(
        self,
        runtime: Runtime,
        consumer_config: dict[str, Any],
        events_topic: str,
        detections_topic: str,
        metrics: GatewayMetrics,
        *,
        owner: str,
        event_sample_rate: float,
    ) -> None:
        self.events_topic = events_topic
        self.detections_topic = detections_topic
        self._runtime = runtime
        self._metrics = metrics
        self._owner = owner
        self._sampler = TokenBucket(event_sample_rate)
        self._emit: Emit = lambda _event, _data: None
        self.aggregates: dict[int, PartitionAggregate] = {}
        self._assigned: set[tuple[str, int]] = set()
        self._bad_log = Throttle(60.0)
        self._running = False
        m = metrics
        self._events, self._starts = Children(m.events), Children(m.stream_starts)
        self._startup, self._failures = Children(m.startup_seconds), Children(m.startup_failures)
        self._watched, self._rebuffer = Children(m.watched_seconds), Children(m.rebuffer_seconds)
        self._switches = Children(m.bitrate_switches)
        self._watched_bytes = Children(m.watched_bytes)
        detections_config = consumer_config | {
            "group.id": f"{consumer_config['group.id']}-detections"
        }
        self.loops = {
            events_topic: ConsumerLoop(
                runtime, consumer_config, self.on_messages, name="events", poll_timeout=0.2
            ),
            detections_topic: ConsumerLoop(
                runtime, detections_config, self.on_messages, name="detections", poll_timeout=0.2
            ),
        }

    def attach(self, emit: Emit) -> None:
        """Where emits go: `emit(event, data)` to every dashboard on every replica."""
        self._emit = emit

    def start(self, emit: Emit) -> None:
        self.attach(emit)
        self._running = True
        for topic, loop in self.loops.items():
            loop.start()
            loop.submit(self._subscriber(topic))
        self._runtime.spawn(self._every_second)

    def halt(self) -> list[ConsumerLoop]:
        """Stop emitting and ask the consumers to stop; returns them to wait for."""
        self._running = False
        for loop in self.loops.values():
            loop.request_stop()
        return list(self.loops.values())

    # -- the group (callbacks run on the consumer's native thread: hand them over)

    def _subscriber(self, topic: str) -> Callable[[Consumer], None]:
        def post(handler: Callable[[list[tuple[str, int]]], None]) -> Any:
            def callback(_consumer: Consumer, partitions: list[TopicPartition]) -> None:
                owned = [(tp.topic, tp.partition) for tp in partitions]
                self._runtime.call_soon_threadsafe(handler, owned)

            return callback

        def subscribe(consumer: Consumer) -> None:
            consumer.subscribe(
                [topic],
                on_assign=post(self._assigned_partitions),
                on_revoke=post(self._revoked_partitions),
                on_lost=post(self._lost_partitions),
            )

        return subscribe

    def _assigned_partitions(self, partitions: list[tuple[str, int]]) -> None:
        now = time.time_ns()
        for topic, partition in partitions:
            self._assigned.add((topic, partition))
            if topic == self.events_topic:
                self.aggregates[partition] = PartitionAggregate(partition, now)
        self._metrics.rebalances.labels(kind="assigned").inc()
        self._update_assignment_metrics()
        log.info("partitions assigned", extra={"partitions": partitions})

    def _revoked_partitions(self, partitions: list[tuple[str, int]], kind: str = "revoked") -> None:
        for topic, partition in partitions:
            self._assigned.discard((topic, partition))
            if topic == self.events_topic and self.aggregates.pop(partition, None) is not None:
                self._emit("qoe_released", {"partition": partition, "owner": self._owner})
            if self._has_lag_series(topic, partition):
                self._metrics.consumer_lag.remove(topic, str(partition))
        self._metrics.rebalances.labels(kind=kind).inc()
        self._update_assignment_metrics()
        log.info("partitions %s", kind, extra={"partitions": partitions})

    def _lost_partitions(self, partitions: list[tuple[str, int]]) -> None:
        self._revoked_partitions(partitions, kind="lost")

    def _has_lag_series(self, topic: str, partition: int) -> bool:
        labels = {"topic": topic, "partition": str(partition)}
        return self._metrics.registry.get_sample_value("gateway_consumer_lag", labels) is not None

    def _update_assignment_metrics(self) -> None:
        for topic in (self.events_topic, self.detections_topic):
            owned = sum(1 for t, _ in self._assigned if t == topic)
            self._metrics.partitions_assigned.labels(topic=topic).set(owned)

    # -- records

    def on_messages(self, messages: list[Message]) -> None:
        processed: dict[tuple[str, int], int] = {}
        for msg in messages:
            error = msg.error()
            if error is not None:
                if error.code() != KafkaError._PARTITION_EOF:
                    self._metrics.kafka_errors.labels(code=error.name()).inc()
                continue
            topic, partition = msg.topic() or "", msg.partition() or 0
            if topic == self.events_topic:
                self._on_event(msg, partition)
            elif topic == self.detections_topic:
                self._on_detection(msg)
            processed[(topic, partition)] = (msg.offset() or 0) + 1
        for topic in {t for t, _ in processed}:
            offsets = [TopicPartition(t, p, o) for (t, p), o in processed.items() if t == topic]
            self.loops[topic].submit(_store(offsets))

    def _on_event(self, msg: Message, partition: int) -> None:
        raw = msg.value() or b""
        try:
            event = PlaybackEvent.model_validate_json(raw)
        except ValidationError as exc:
            self._bad(msg, "invalid", str(exc).splitlines()[0])
            return
        ts_ns = ts_to_ns(event.ts)
        aggregate = self.aggregates.get(partition)
        if aggregate is None:  # a record of a partition not (or no longer) ours
            aggregate = self.aggregates[partition] = PartitionAggregate(partition, time.time_ns())
        applied = aggregate.apply(event, ts_ns)
        device = applied.device
        self._events(event.event_type, device).inc()
        if applied.started:
            self._starts(device).inc()
            self._startup(device).observe((applied.startup_ms or 0) / 1000)
        if applied.startup_failed:
            self._failures(device).inc()
        if applied.watched_ms:
            self._watched(device).inc(applied.watched_ms / 1000)
            # kbit/s x ms = bits
            self._watched_bytes(device).inc(applied.watched_kbps * applied.watched_ms / 8)
        if applied.rebuffer_ms:
            self._rebuffer(device).inc(applied.rebuffer_ms / 1000)
        if applied.switch:
            self._switches(device, applied.switch).inc()
        if self._sampler.take():
            self._emit("new_event", json.loads(raw))
            self._metrics.events_emitted.inc()
            self._metrics.event_latency.observe(max(0.0, (time.time_ns() - ts_ns) / 1e9))
        else:
            self._metrics.events_sampled_out.inc()

    def _on_detection(self, msg: Message) -> None:
        try:
            detection = Detection.model_validate_json(msg.value() or b"")
        except ValidationError as exc:
            self._bad(msg, "invalid", str(exc).splitlines()[0])
            return
        self._metrics.detections.labels(kind=detection.kind).inc()
        self._emit("detection", detection.model_dump(mode="json"))

    def _bad(self, msg: Message, reason: str, detail: str) -> None:
        topic = msg.topic() or ""
        self._metrics.bad_messages.labels(topic=topic, reason=reason).inc()
        if self._bad_log.allow((topic, reason)):
            log.warning(
                "bad record skipped",
                extra={"topic": topic, "partition": msg.partition(), "offset": msg.offset(),
                       "reason": reason, "detail": detail[:300]},
            )  # fmt: skip

    # -- once a second

    def _every_second(self) -> None:
        while self._running:
            self._runtime.sleep(1.0)
            try:
                self.tick(time.time_ns())
            except Exception:
                log.exception("dashboard tick failed")

    def tick(self, now_ns: int) -> None:
        sessions: dict[tuple[str, str], int] = {}
        for aggregate in list(self.aggregates.values()):
            snapshot = aggregate.snapshot(now_ns, self._owner)
            self._emit("qoe", snapshot)
            for device, values in snapshot["devices"].items():
                for state in ACTIVE_STATES:
                    sessions[(state, device)] = sessions.get((state, device), 0) + values[state]
        for (player_state, device), count in sessions.items():
            self._metrics.sessions.labels(state=player_state, device=device).set(count)
        for loop in self.loops.values():
            loop.submit(self._measure_lag)

    def _measure_lag(self, consumer: Consumer) -> None:
        """Native-thread command: lag per owned partition from cached watermarks."""
        assignment = consumer.assignment()
        if not assignment:
            return
        lags = []
        for tp in consumer.position(assignment):
            _low, high = consumer.get_watermark_offsets(tp, cached=True)
            if tp.offset >= 0 and high >= 0:
                lags.append((tp.topic, tp.partition, max(0, high - tp.offset)))
        self._runtime.call_soon_threadsafe(self._set_lag, lags)

    def _set_lag(self, lags: list[tuple[str, int, int]]) -> None:
        for topic, partition, lag in lags:
            if (topic, partition) in self._assigned:
                self._metrics.consumer_lag.labels(topic=topic, partition=str(partition)).set(lag)


def _store(offsets: list[TopicPartition]) -> Callable[[Consumer], None]:
    """Native-thread command: mark these offsets processed (committed every few seconds)."""

    def store(consumer: Consumer) -> None:
        consumer.store_offsets(offsets=offsets)

    return store
