"""Each owned partition's QoE state, kept in `qoe-checkpoints` between its owners.

Delivery semantics, together with the events group (feature.py):
- the owner writes a partition's state (qoe.py: counts, open sessions, recent event ids,
  and the offset they reach) every few seconds, and once more while it gives the
  partition up in a rebalance, before the group hands it on;
- the next owner reads the newest checkpoint of the partition, restores it and reads on
  from its offset. Records between that offset and the group's committed offset were
  counted by an owner that crashed before its next checkpoint: they rebuild the state,
  but Prometheus counters and `new_event` skip them (the dead owner counted them);
- a checkpoint is consistent however old (state and offset go together), so one that was
  not written or not acknowledged only makes the next owner read further back;
- with no checkpoint (a new partition, a new group), the partition is counted from the
  group's committed offset, or from where `events_start` says;
- checkpoints belong to the consumer group (their key): gateways of another group on the
  same topics keep their own counts.

Runs on the events consumer's native thread (take_over, hand_over: they wait for Kafka)
and in the app context (the periodic writes, which only queue).
"""

from __future__ import annotations

import functools
import logging
import time
from dataclasses import dataclass

from confluent_kafka import (
    OFFSET_INVALID,
    Consumer,
    KafkaError,
    KafkaException,
    Producer,
    TopicPartition,
)
from rts_common.contracts import (
    QOE_CHECKPOINT_MAX_MESSAGE_BYTES,
    QOE_CHECKPOINTS,
    BadMessage,
    QoeCheckpoint,
    checkpoint_headers,
    checkpoint_key,
)

from rts_gateway.bridge import KafkaBridge, Runtime
from rts_gateway.feed.qoe import PartitionAggregate
from rts_gateway.metrics import GatewayMetrics

log = logging.getLogger(__name__)

KAFKA_TIMEOUT = 10.0
# The whole takeover of a rebalance's partitions runs inside the group's assign callback,
# where the member is not yet settled in its group: it gets this long, however slow Kafka
# is meanwhile (a broker frozen again), and partitions not restored by then start from
# the committed offset without their state, rather than keep the member out of its group.
TAKEOVER_SECONDS = 20.0
# Records read back at first when looking for the group's newest checkpoint (more, and
# more again, only when other groups wrote after it).
NEWEST_SPAN = 4
# How long a revoked partition's last checkpoint may take to be acknowledged before the
# partition is given up anyway (its previous checkpoint then serves).
HANDOVER_FLUSH_SECONDS = 5.0


@dataclass
class Takeover:
    """A partition this replica was just assigned, and how it starts."""

    partition: int
    aggregate: PartitionAggregate
    # Where the consumer starts: the checkpoint's offset, or OFFSET_INVALID for the
    # group's committed offset (auto.offset.reset without one).
    start: int
    # Records below it were counted (Prometheus, new_event) by an earlier owner.
    counted_from: int
    restored: bool
    problem: str = ""  # why the state starts empty or incomplete, for the log


class Checkpoints:
    def __init__(
        self,
        bridge: KafkaBridge,
        events_topic: str,
        *,
        group: str,
        owner: str,
        dedupe_window: int,
        interval: float,
    ) -> None:
        self.topic = bridge.topic(QOE_CHECKPOINTS)
        self.group = group
        self.owner = owner
        self.interval = interval
        self._bridge = bridge
        self._runtime: Runtime = bridge.runtime
        self._metrics: GatewayMetrics = bridge.metrics
        self._events_topic = events_topic
        self._dedupe_window = dedupe_window
        self._producer: Producer | None = None
        # App context only: per owned partition, the offset and time of the last write.
        self._written: dict[int, tuple[int, float]] = {}

    def start(self) -> None:
        # Idempotence keeps a partition's checkpoints in the order they were written, even
        # across retries: the newest record of a partition is its newest state.
        self._producer = self._bridge.producer(
            "checkpoints",
            **{
                "enable.idempotence": True,
                "acks": "all",
                "compression.type": "zstd",
                "linger.ms": 20,
                "message.max.bytes": QOE_CHECKPOINT_MAX_MESSAGE_BYTES,
                "message.timeout.ms": 30_000,
            },
        )

    # -- taking partitions over (native thread, in the events group's on_assign)

    def take_over(
        self, consumer: Consumer, partitions: list[int], budget: float = TAKEOVER_SECONDS
    ) -> list[Takeover]:
        """How each newly assigned partition starts: its newest checkpoint, or nothing
        (also when `budget` seconds did not suffice to read it)."""
        deadline = time.monotonic() + budget
        tps = [TopicPartition(self._events_topic, p) for p in partitions]
        committed = {
            tp.partition: tp.offset
            for tp in consumer.committed(tps, timeout=_left(deadline, KAFKA_TIMEOUT))
        }
        reader = self._bridge.plain_consumer("checkpoints", **{"enable.partition.eof": True})
        try:
            return [
                self._take_over(consumer, reader, p, committed.get(p, OFFSET_INVALID), deadline)
                for p in partitions
            ]
        finally:
            reader.close()

    def fresh(self, partition: int, counted_from: int = 0, problem: str = "") -> Takeover:
        """A partition counted from the group's committed offset, with nothing before it."""
        aggregate = PartitionAggregate(partition, time.time_ns(), dedupe_window=self._dedupe_window)
        return Takeover(partition, aggregate, OFFSET_INVALID, counted_from, False, problem)

    def _take_over(
        self, consumer: Consumer, reader: Consumer, partition: int, committed: int, deadline: float
    ) -> Takeover:
        counted_from = max(committed, 0)
        if time.monotonic() >= deadline:
            return self.fresh(partition, counted_from, "the takeover ran out of time")
        checkpoint, problem = self._newest(reader, partition, deadline)
        if checkpoint is None:
            return self.fresh(partition, counted_from, problem)
        try:
            low, high = consumer.get_watermark_offsets(
                TopicPartition(self._events_topic, partition),
                timeout=_left(deadline, KAFKA_TIMEOUT),
            )
        except KafkaException as exc:
            return self.fresh(partition, counted_from, f"no watermarks: {exc.args[0]}")
        if checkpoint.offset > high:
            problem = (
                f"checkpoint at offset {checkpoint.offset} is past the partition's end {high} "
                "(the topic was recreated?): ignored"
            )
            return self.fresh(partition, counted_from, problem)
        try:
            aggregate = PartitionAggregate.restore(
                checkpoint.state, dedupe_window=self._dedupe_window
            )
        except (ValueError, KeyError, TypeError) as exc:
            return self.fresh(partition, counted_from, f"unreadable checkpoint: {exc}")
        if aggregate.partition != partition:
            problem = f"checkpoint of partition {aggregate.partition} stored as {partition}"
            return self.fresh(partition, counted_from, problem)
        start = checkpoint.offset
        if start < low:
            problem = (
                f"records {start}..{low - 1} expired before they were counted; the "
                "partition's counts miss them"
            )
            start = low
        return Takeover(partition, aggregate, start, counted_from, True, problem)

    def _newest(
        self, reader: Consumer, partition: int, deadline: float
    ) -> tuple[QoeCheckpoint | None, str]:
        """This group's newest checkpoint of `partition`: as a rule the last record of its
        checkpoint partition, further back when other groups wrote since."""
        tp = TopicPartition(self.topic.name, partition)
        try:
            low, high = reader.get_watermark_offsets(tp, timeout=_left(deadline, KAFKA_TIMEOUT))
        except KafkaException as exc:
            return None, f"cannot read {self.topic.name}[{partition}]: {exc.args[0]}"
        span, end = NEWEST_SPAN, high
        while end > low:
            start = max(low, end - span)
            found, problem = self._read(reader, partition, start, end, deadline)
            if problem or found is not None:
                return found, problem
            end, span = start, span * 4
        return None, ""

    def _read(
        self, reader: Consumer, partition: int, start: int, end: int, deadline: float
    ) -> tuple[QoeCheckpoint | None, str]:
        """The last checkpoint of this group among the records [start, end)."""
        reader.assign([TopicPartition(self.topic.name, partition, start)])
        newest: QoeCheckpoint | None = None
        deadline = min(deadline, time.monotonic() + KAFKA_TIMEOUT)
        while time.monotonic() < deadline:
            msg = reader.poll(0.5)
            if msg is None:
                continue
            error = msg.error()
            if error is not None:
                if error.code() == KafkaError._PARTITION_EOF:
                    return newest, ""
                return None, f"reading checkpoints: {error.str()}"
            if (msg.offset() or 0) >= end:
                return newest, ""
            try:
                checkpoint = self.topic.spec.decode(msg.key(), msg.value(), msg.headers())
            except BadMessage:
                continue  # not a checkpoint this gateway can read; look further
            if (checkpoint.group, checkpoint.partition) == (self.group, partition):
                newest = checkpoint
            if (msg.offset() or 0) >= end - 1:
                return newest, ""
        return None, "the newest checkpoint could not be read in time"

    def taken_over(self, takeover: Takeover) -> None:
        """App context: the partition is owned from now on."""
        self._written[takeover.partition] = (takeover.aggregate.offset, time.monotonic())
        self._metrics.checkpoints.labels(result="restored" if takeover.restored else "none").inc()

    # -- handing partitions over (native thread, in the events group's on_revoke)

    def hand_over(self, consumer: Consumer, aggregates: list[PartitionAggregate]) -> None:
        """Write the released partitions' last states, wait for them, and store their
        offsets, which librdkafka commits before the group hands the partitions on."""
        # A partition nothing was read from has nothing to hand on.
        aggregates = [a for a in aggregates if a.offset]
        if self._producer is None or not aggregates:
            return
        now_ns = time.time_ns()
        for aggregate in aggregates:
            self._produce(self._producer, aggregate, now_ns)
        unsent = self._producer.flush(HANDOVER_FLUSH_SECONDS)
        if unsent:
            self._warn("checkpoints not acknowledged in time", unsent=unsent)
        topic = self._events_topic
        offsets = [TopicPartition(topic, a.partition, a.offset) for a in aggregates]
        if offsets:
            try:
                consumer.store_offsets(offsets=offsets)
            except KafkaException as exc:
                self._warn("offsets of released partitions not stored", error=str(exc.args[0]))

    def released(self, partition: int) -> None:
        """App context: the partition is no longer owned here."""
        self._written.pop(partition, None)

    # -- while owned (app context)

    def write_due(self, aggregates: list[PartitionAggregate]) -> None:
        """Write the state of the owned partition longest due (it moved on since its last
        write, longer than `interval` ago); serve delivery reports.

        One per call: a state of thousands of sessions takes milliseconds to serialise in
        the app context, and partitions taken over together would all fall due at once."""
        if self._producer is None:
            return
        now = time.monotonic()
        due = [
            (self._written.get(a.partition, (0, 0.0))[1], a)
            for a in aggregates
            if a.offset > self._written.get(a.partition, (0, 0.0))[0]
        ]
        if due:
            at, aggregate = min(due, key=lambda item: item[0])
            if now - at >= self.interval:
                self._written[aggregate.partition] = (aggregate.offset, now)
                self._produce(self._producer, aggregate, time.time_ns())
        self._producer.poll(0)

    def close(self, timeout: float) -> None:
        if self._producer is not None:
            self._producer.flush(timeout)

    # -- either thread

    def _produce(self, producer: Producer, aggregate: PartitionAggregate, now_ns: int) -> None:
        partition = aggregate.partition
        try:
            producer.produce(
                self.topic.name,
                aggregate.checkpoint(now_ns, self.owner),
                checkpoint_key(self.group, partition),
                partition=partition,
                headers=checkpoint_headers(aggregate.offset, self.owner),
                on_delivery=self._delivered,
            )
        except (BufferError, KafkaException) as exc:
            self._runtime.call_soon_threadsafe(self._failed, str(exc))

    def _delivered(self, err: KafkaError | None, _msg: object) -> None:
        if err is None:
            self._runtime.call_soon_threadsafe(self._count, "written")
        else:
            self._runtime.call_soon_threadsafe(self._failed, err.str())

    def _warn(self, message: str, **extra: object) -> None:
        self._runtime.call_soon_threadsafe(functools.partial(log.warning, message, extra=extra))

    def _count(self, result: str) -> None:
        self._metrics.checkpoints.labels(result=result).inc()

    def _failed(self, error: str) -> None:
        self._count("failed")
        log.warning("QoE checkpoint not written", extra={"error": error})


def _left(deadline: float, most: float) -> float:
    """Seconds to `deadline`, at most `most` (and a little more than none: librdkafka reads
    a zero timeout as "do not wait")."""
    return max(0.01, min(most, deadline - time.monotonic()))
