"""The live dashboard's data: playback events and detections, from consumer groups to every
browser on every replica.

Delivery semantics: replicas share `playback-events` in one consumer group
(cooperative-sticky) and `video-detections` in a second one, so each record is
processed once, by the replica that owns its partition. Two groups, because a sticky
assignor balances the total number of partitions, not each topic: with both topics in
one group, one replica could end up with every events partition and the other with
only detections. Offsets are stored after a batch is applied and committed every two
seconds, and by librdkafka before a partition is given up.

A playback-events partition carries its QoE state from owner to owner (checkpoints.py):
on assignment the new owner restores the newest checkpoint and reads on from its
offset, so the counts and the sessions playing, paused or buffering are right from its
first snapshot; on revocation the owner applies what it already fetched, writes a last
checkpoint and stores its offsets before the partition moves; records a poll fetched
for a partition the same poll revoked are dropped by the bridge, and a late record of
a partition no longer owned is dropped here. The dashboard's totals are therefore exact
through scale up, scale down and crashes; Prometheus counters of a crashed replica may
count again the records it applied in its last two seconds (its uncommitted ones).

What a replica emits reaches other replicas' browsers through the Socket.IO client
manager backed by Kafka (broadcast.py).
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable
from typing import Any

from confluent_kafka import Consumer, TopicPartition
from rts_common.contracts import DASHBOARD_BROADCAST, PLAYBACK_EVENTS, VIDEO_DETECTIONS
from rts_common.tasks import PeriodicTask

from rts_gateway.bridge import ConsumerLoop, KafkaBridge
from rts_gateway.feed.broadcast import KafkaBroadcastManager
from rts_gateway.feed.checkpoints import Checkpoints, Takeover
from rts_gateway.feed.playback import (
    BATCH_SECONDS,
    BATCHED_ALL,
    BATCHED_SCOPED,
    DETECTIONS_ALL,
    SINGLE,
    PlaybackFeed,
)
from rts_gateway.feed.qoe import PartitionAggregate
from rts_gateway.metrics import GatewayMetrics
from rts_gateway.settings import GatewaySettings
from rts_gateway.sockets import Payload, SocketServer

log = logging.getLogger(__name__)

Partitions = list[tuple[str, int]]

# How long a revoked partition waits for the app context to apply what was fetched for it
# (its last checkpoint then serves if it times out).
HANDOVER_SECONDS = 5.0


class Feed:
    def __init__(
        self, settings: GatewaySettings, bridge: KafkaBridge, metrics: GatewayMetrics
    ) -> None:
        self._metrics = metrics
        self._runtime = bridge.runtime
        events, detections = bridge.topic(PLAYBACK_EVENTS), bridge.topic(VIDEO_DETECTIONS)
        self.events_topic, self.detections_topic = events.name, detections.name
        owner = settings.replica_name
        self.playback = PlaybackFeed(
            metrics,
            owner=owner,
            event_sample_rate=settings.event_sample_rate,
            events_topic=events.name,
            dedupe_window=settings.dedupe_window,
        )
        self.checkpoints = Checkpoints(
            bridge,
            events.name,
            group=settings.group_id,
            owner=owner,
            dedupe_window=settings.dedupe_window,
            interval=settings.checkpoint_seconds,
        )
        group, session_timeout = settings.group_id, settings.group_session_timeout_seconds
        self.events = bridge.group_consumer(
            events,
            self.playback.on_events,
            name="events",
            group_id=group,
            start=settings.events_start,
            session_timeout=session_timeout,
            poll_timeout=0.2,
        )
        self.detections = bridge.group_consumer(
            detections,
            self.playback.on_detections,
            name="detections",
            group_id=f"{group}-detections",
            start=settings.events_start,
            session_timeout=session_timeout,
            poll_timeout=0.2,
        )
        self.loops: list[ConsumerLoop[Any]] = [self.events, self.detections]
        self._owned: set[tuple[str, int]] = set()
        self.broadcast = (
            KafkaBroadcastManager(bridge, bridge.topic(DASHBOARD_BROADCAST))
            if settings.broadcast
            else None
        )
        # The tick reads the aggregates the consumers' batches change: it runs where they
        # are applied (the runtime's dispatcher), never beside them.
        self._tasks = [
            PeriodicTask("dashboard-tick", 1.0, self._runtime.serialized(self.tick)),
            PeriodicTask(
                "dashboard-batch", BATCH_SECONDS, self._runtime.serialized(self.playback.flush)
            ),
        ]

    def attach(self, sockets: SocketServer) -> None:
        self.playback.attach(sockets.emit)

        def take(sid: str, batched: bool) -> None:
            """Put the client in the rooms of the way it takes its messages."""
            every_camera = sockets.sees_every_camera(sid)
            for room in (SINGLE, BATCHED_ALL, BATCHED_SCOPED, DETECTIONS_ALL):
                sockets.leave_room(sid, room)
            if batched:
                sockets.enter_room(sid, BATCHED_ALL if every_camera else BATCHED_SCOPED)
            else:
                sockets.enter_room(sid, SINGLE)
                if every_camera:
                    sockets.enter_room(sid, DETECTIONS_ALL)

        def options(sid: str, wanted: Payload) -> Payload:
            """A client may ask for its events in batches."""
            batched = isinstance(wanted, dict) and bool(wanted.get("batch"))
            take(sid, batched)
            return {"batch": batched}

        sockets.on_connect(lambda sid: take(sid, batched=False))
        sockets.on("options", options)

    # -- lifecycle

    def start(self) -> None:
        if self.broadcast is not None:
            self.broadcast.start()
        self.checkpoints.start()
        self.events.start()
        self.events.subscribe(
            on_assign=self._take_over, on_revoke=self._hand_over, on_lost=self._lose
        )
        self.detections.start()
        self.detections.subscribe(
            on_assign=self._post(self.partitions_assigned),
            on_revoke=self._post(self.partitions_revoked),
            on_lost=self._post(self.partitions_lost),
        )
        for task in self._tasks:
            task.start()

    def components(self) -> list[ConsumerLoop[Any] | PeriodicTask]:
        broadcast = self.broadcast.components() if self.broadcast else []
        return [*self.loops, *self._tasks, *broadcast]

    def request_stop(self) -> None:
        for task in self._tasks:
            task.stop(timeout=0)
        for loop in self.loops:
            loop.request_stop()
        if self.broadcast is not None:
            self.broadcast.request_stop()

    def wait_stopped(self, deadline: float) -> None:
        # The groups first: leaving them writes the owned partitions' last checkpoints.
        for loop in self.loops:
            loop.wait_stopped(max(0.1, deadline - time.monotonic()))
        self.checkpoints.close(max(0.1, (deadline - time.monotonic()) / 3))
        if self.broadcast is not None:
            self.broadcast.close(max(0.1, (deadline - time.monotonic()) / 3))
            self.broadcast.consumer.wait_stopped(max(0.1, deadline - time.monotonic()))

    # -- the events group (native thread: these run inside the consumer's poll)

    # A cooperative rebalance calls every member back, mostly with no partition for it;
    # librdkafka assigns those (empty) lists itself.

    def _take_over(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        if not partitions:
            return
        started = time.monotonic()
        numbers = [tp.partition for tp in partitions]
        try:
            takeovers = self.checkpoints.take_over(consumer, numbers)
        except Exception as exc:  # noqa: BLE001 - raising here would stop the consumer
            takeovers = [self.checkpoints.fresh(p, problem=str(exc)) for p in numbers]
        self._runtime.call_soon_threadsafe(self._taken_over, takeovers, time.monotonic() - started)
        consumer.incremental_assign(
            [TopicPartition(self.events_topic, t.partition, t.start) for t in takeovers]
        )

    def _hand_over(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        if not partitions:
            return
        numbers = [tp.partition for tp in partitions]
        try:
            # Runs after every batch already handed to the app context, so the released
            # aggregates hold everything fetched for these partitions.
            released = self._runtime.call_and_wait(
                self.release_events, numbers, "revoked", timeout=HANDOVER_SECONDS
            )
            self.checkpoints.hand_over(consumer, released)
        except Exception as exc:  # noqa: BLE001 - raising here would stop the consumer
            self._runtime.call_soon_threadsafe(
                functools.partial(
                    log.warning,
                    "partitions revoked without a last checkpoint",
                    extra={"partitions": numbers, "error": str(exc)},
                )
            )

    def _lose(self, _consumer: Consumer, partitions: list[TopicPartition]) -> None:
        if not partitions:
            return
        # Another member may own them already: no last checkpoint over its newer ones.
        numbers = [tp.partition for tp in partitions]
        self._runtime.call_soon_threadsafe(self.release_events, numbers, "lost")

    # -- the events group (app context)

    def _taken_over(self, takeovers: list[Takeover], seconds: float) -> None:
        for takeover in takeovers:
            p = takeover.partition
            self.playback.partition_assigned(p, takeover.aggregate, takeover.counted_from)
            self.checkpoints.taken_over(takeover)
            if takeover.problem:
                log.warning(
                    "partition taken over without its full state",
                    extra={"partition": p, "problem": takeover.problem},
                )
        self._metrics.takeover_seconds.observe(seconds)
        self._assigned([(self.events_topic, t.partition) for t in takeovers])
        log.info(
            "playback-events partitions taken over",
            extra={
                "partitions": {t.partition: t.aggregate.offset for t in takeovers},
                "restored": [t.partition for t in takeovers if t.restored],
                "seconds": round(seconds, 3),
            },
        )

    def release_events(self, partitions: list[int], kind: str) -> list[PartitionAggregate]:
        released = []
        for partition in partitions:
            aggregate = self.playback.partition_released(partition)
            self.checkpoints.released(partition)
            if aggregate is not None:
                released.append(aggregate)
        self._released([(self.events_topic, p) for p in partitions], kind)
        return released

    # -- the detections group and the assignment metrics (app context)

    def _post(self, handler: Callable[[Partitions], None]) -> Callable[..., None]:
        def callback(_consumer: Consumer, partitions: list[TopicPartition]) -> None:
            if partitions:
                owned = [(tp.topic, tp.partition) for tp in partitions]
                self._runtime.call_soon_threadsafe(handler, owned)

        return callback

    def partitions_assigned(self, partitions: Partitions) -> None:
        self._assigned(partitions)

    def partitions_revoked(self, partitions: Partitions) -> None:
        self._released(partitions, "revoked")

    def partitions_lost(self, partitions: Partitions) -> None:
        self._released(partitions, "lost")

    def _assigned(self, partitions: Partitions) -> None:
        self._owned.update(partitions)
        self._metrics.rebalances.labels(kind="assigned").inc()
        self._update_assignment_metrics()
        log.info("partitions assigned", extra={"partitions": partitions})

    def _released(self, partitions: Partitions, kind: str) -> None:
        for topic, partition in partitions:
            self._owned.discard((topic, partition))
            self._metrics.consumer_lag.remove(topic, str(partition))  # absent: no-op
        self._metrics.rebalances.labels(kind=kind).inc()
        self._update_assignment_metrics()
        log.info("partitions %s", kind, extra={"partitions": partitions})

    def _update_assignment_metrics(self) -> None:
        for topic in (self.events_topic, self.detections_topic):
            owned = sum(1 for t, _ in self._owned if t == topic)
            self._metrics.partitions_assigned.labels(topic=topic).set(owned)

    # -- once a second

    def tick(self) -> None:
        self.playback.tick(time.time_ns())
        self.checkpoints.write_due(list(self.playback.aggregates.values()))
        for loop in self.loops:
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
            if (topic, partition) in self._owned:
                self._metrics.consumer_lag.labels(topic=topic, partition=str(partition)).set(lag)
