"""The live dashboard's data: playback events and detections, from consumer groups to every
browser on every replica.

Delivery semantics: replicas share `playback-events` in one consumer group
(cooperative-sticky) and `video-detections` in a second one, so each record is
processed once, by the replica that owns its partition. Two groups, because a sticky
assignor balances the total number of partitions, not each topic: with both topics in
one group, one replica could end up with every events partition and the other with
only detections. Offsets are stored after a batch is applied and committed every few
seconds (at-least-once: a crash re-counts a few seconds of events in the aggregates of
the replica that takes over; a rebalance does not, because librdkafka commits the
stored offsets of a partition before giving it up).

What a replica emits reaches other replicas' browsers through the Socket.IO client
manager backed by Kafka (broadcast.py).
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Callable
from typing import Any

from confluent_kafka import Consumer, TopicPartition
from rts_common.contracts import DASHBOARD_BROADCAST, PLAYBACK_EVENTS, VIDEO_DETECTIONS
from rts_common.tasks import PeriodicTask

from rts_gateway.bridge import ConsumerLoop, KafkaBridge
from rts_gateway.feed.broadcast import KafkaBroadcastManager
from rts_gateway.feed.playback import PlaybackFeed
from rts_gateway.metrics import GatewayMetrics
from rts_gateway.settings import GatewaySettings
from rts_gateway.sockets import SocketServer

log = logging.getLogger(__name__)

Partitions = list[tuple[str, int]]


class Feed:
    def __init__(
        self, settings: GatewaySettings, bridge: KafkaBridge, metrics: GatewayMetrics
    ) -> None:
        self._metrics = metrics
        self._runtime = bridge.runtime
        self.playback = PlaybackFeed(
            metrics,
            owner=f"{socket.gethostname()}-{os.getpid()}",
            event_sample_rate=settings.event_sample_rate,
        )
        events, detections = bridge.topic(PLAYBACK_EVENTS), bridge.topic(VIDEO_DETECTIONS)
        self.events_topic, self.detections_topic = events.name, detections.name
        group = settings.group_id
        self.loops: list[ConsumerLoop[Any]] = [
            bridge.group_consumer(
                events, self.playback.on_events, name="events", group_id=group,
                start=settings.events_start, poll_timeout=0.2,
            ),
            bridge.group_consumer(
                detections, self.playback.on_detections, name="detections",
                group_id=f"{group}-detections", start=settings.events_start, poll_timeout=0.2,
            ),
        ]  # fmt: skip
        self._owned: set[tuple[str, int]] = set()
        self.broadcast = (
            KafkaBroadcastManager(bridge, bridge.topic(DASHBOARD_BROADCAST))
            if settings.broadcast
            else None
        )
        # The tick reads the aggregates the consumers' batches change: it runs where they
        # are applied (the runtime's dispatcher), never beside them.
        self._tasks = [PeriodicTask("dashboard-tick", 1.0, self._runtime.serialized(self.tick))]

    def attach(self, sockets: SocketServer) -> None:
        self.playback.attach(sockets.emit)

    # -- lifecycle

    def start(self) -> None:
        if self.broadcast is not None:
            self.broadcast.start()
        for loop in self.loops:
            loop.start()
            loop.submit(self._subscriber(loop.topic.name))
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
        if self.broadcast is not None:
            self.broadcast.close(max(0.1, (deadline - time.monotonic()) / 3))
        loops = [*self.loops, *([self.broadcast.consumer] if self.broadcast else [])]
        for loop in loops:
            loop.wait_stopped(max(0.1, deadline - time.monotonic()))

    # -- the groups (callbacks run on the consumer's native thread: hand them over)

    def _subscriber(self, topic: str) -> Callable[[Consumer], None]:
        def post(handler: Callable[[Partitions], None]) -> Callable[..., None]:
            def callback(_consumer: Consumer, partitions: list[TopicPartition]) -> None:
                owned = [(tp.topic, tp.partition) for tp in partitions]
                self._runtime.call_soon_threadsafe(handler, owned)

            return callback

        def subscribe(consumer: Consumer) -> None:
            consumer.subscribe(
                [topic],
                on_assign=post(self.partitions_assigned),
                on_revoke=post(self.partitions_revoked),
                on_lost=post(self.partitions_lost),
            )

        return subscribe

    def partitions_assigned(self, partitions: Partitions) -> None:
        for topic, partition in partitions:
            self._owned.add((topic, partition))
            if topic == self.events_topic:
                self.playback.partition_assigned(partition)
        self._metrics.rebalances.labels(kind="assigned").inc()
        self._update_assignment_metrics()
        log.info("partitions assigned", extra={"partitions": partitions})

    def partitions_revoked(self, partitions: Partitions, kind: str = "revoked") -> None:
        for topic, partition in partitions:
            self._owned.discard((topic, partition))
            if topic == self.events_topic:
                self.playback.partition_released(partition)
            self._metrics.consumer_lag.remove(topic, str(partition))  # absent: no-op
        self._metrics.rebalances.labels(kind=kind).inc()
        self._update_assignment_metrics()
        log.info("partitions %s", kind, extra={"partitions": partitions})

    def partitions_lost(self, partitions: Partitions) -> None:
        self.partitions_revoked(partitions, kind="lost")

    def _update_assignment_metrics(self) -> None:
        for topic in (self.events_topic, self.detections_topic):
            owned = sum(1 for t, _ in self._owned if t == topic)
            self._metrics.partitions_assigned.labels(topic=topic).set(owned)

    # -- once a second

    def tick(self) -> None:
        self.playback.tick(time.time_ns())
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
