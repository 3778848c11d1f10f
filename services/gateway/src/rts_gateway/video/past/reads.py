"""Kafka reads made for one request: a replay, a timeline, a snapshot at a time, a clip.

Each such request gets its own consumer through the bridge (direct assignment, no group,
no commits) that never polls by itself: every read is a command the request submits and
waits for, bounded in time, records and bytes, so a request holds what it asked for and
nothing arrives behind its back. Records reach the request through the bridge's one path
of consumed records (`decode_batch`). The reads share one per-process limit (the
`max_replays` setting, counted per request whatever its kind), each kind has a limit per
session (`max_replays_per_session`), and they are closed when the request ends, or at
once when its session is revoked.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from confluent_kafka import Consumer, KafkaException, Message, TopicPartition
from rts_common.signin import Grant

from rts_gateway.bridge import ConsumerLoop, KafkaBridge, Record, Topic, decode_batch
from rts_gateway.grants import Leases, LimitReached
from rts_gateway.metrics import GatewayMetrics

log = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")

READ_KINDS = ("replay", "timeline", "snapshot", "clip")
# What librdkafka may prefetch for a request's consumer, per partition: small, since a
# request reads what it asked for and nothing more.
QUEUED_KBYTES = 2 * 1024
# A command waits this much longer than its own deadline before the request gives up.
_ANSWER_MARGIN = 5.0
_POLL = 0.25


class KafkaUnavailable(RuntimeError):
    """Kafka did not answer a request's read in time (a 503)."""


@dataclass
class Chunk(Generic[T]):
    """Records of one read, in offset order, and the offset the next read starts at."""

    records: list[Record[T]] = field(default_factory=list)
    position: int = 0
    size: int = 0


class ReadSlots:
    """The per-process limit on request reads, counted in metrics by kind."""

    def __init__(self, limit: int, metrics: GatewayMetrics) -> None:
        self.limit = limit
        self._metrics = metrics
        self._open = 0
        self._lock = threading.Lock()  # request threads in threading mode
        for kind in READ_KINDS:
            metrics.kafka_reads.labels(kind=kind)
            metrics.kafka_reads_opened.labels(kind=kind)
            metrics.kafka_reads_refused.labels(kind=kind)

    @property
    def open(self) -> int:
        return self._open

    def acquire(self, kind: str) -> bool:
        with self._lock:
            if self._open >= self.limit:
                self._metrics.kafka_reads_refused.labels(kind=kind).inc()
                return False
            self._open += 1
        self._metrics.kafka_reads.labels(kind=kind).inc()
        self._metrics.kafka_reads_opened.labels(kind=kind).inc()
        return True

    def release(self, kind: str) -> None:
        with self._lock:
            self._open -= 1
        self._metrics.kafka_reads.labels(kind=kind).dec()


class RequestReads:
    """The reads into the past open on this process, each opened within the limits: the
    process's slots, and per session and kind its leases (a revoked session closes its
    readers at once)."""

    def __init__(
        self,
        bridge: KafkaBridge,
        leases: Leases,
        metrics: GatewayMetrics,
        *,
        limit: int,
        per_session: int,
    ) -> None:
        self._bridge = bridge
        self._slots = ReadSlots(limit, metrics)
        self._leases = leases
        self._per_session = per_session

    @property
    def open(self) -> int:
        return self._slots.open

    def reader(
        self, kind: str, topic: Topic[T], camera: str, grant: Grant | None
    ) -> RequestReader[T]:
        """A consumer for one request about `camera` (a replay, a snapshot at a time, a
        clip, a timeline), or LimitReached before any Kafka resource is made: per process
        (replays and recordings together), and per session and kind. The caller closes
        it when the request ends; a revoked session closes it at once."""
        if not self._slots.acquire(kind):
            self._leases.hit("replays")
            raise LimitReached(
                "replays", "too many replays and recordings open on this gateway; try again"
            )
        opened: list[RequestReader[T]] = []
        try:
            lease = self._leases.hold(
                grant,
                kind,
                lambda: opened[0].close() if opened else None,
                limit=self._per_session,
            )
        except LimitReached:
            self._slots.release(kind)
            raise

        def closed() -> None:
            self._slots.release(kind)
            if lease is not None:
                lease.release()

        try:
            reader = RequestReader(
                self._bridge, topic, name=f"{kind}-{camera}", key=camera, on_close=closed
            )
        except BaseException:
            closed()
            raise
        opened.append(reader)
        return reader


class RequestReader(Generic[T]):
    """One request's consumer. `read` decodes records of `topic`; the position queries
    (watermarks, offsets for times, timestamps) take any topic's name, so one consumer
    serves a request that looks at frames and detections alike. With `key`, records of
    other keys (other cameras sharing the partition) are skipped on the Kafka thread,
    before they take any memory."""

    def __init__(
        self,
        bridge: KafkaBridge,
        topic: Topic[T],
        *,
        name: str,
        key: str | None = None,
        on_close: Callable[[], None] = lambda: None,
    ) -> None:
        self.topic = topic
        self._bridge = bridge
        self._name = name
        self._key = key.encode() if key is not None else None
        self._on_close = on_close
        self._closed = False
        # Native-thread state: where the consumer stands, to assign only when a read
        # does not continue the previous one.
        self._assigned: tuple[str, int, int] | None = None
        self._loop: ConsumerLoop[T] = bridge.direct_consumer(
            topic, _never, name=name, queued_kbytes=QUEUED_KBYTES, paused=_always
        )
        self._loop.start()

    # -- the app context: each call waits (green under eventlet) for its command

    def watermarks(self, partition: int, topic: str | None = None) -> tuple[int, int]:
        tp = TopicPartition(topic or self.topic.name, partition)
        low, high = self._ask(lambda c: c.get_watermark_offsets(tp, timeout=10), 10)
        return int(low), int(high)

    def partitions(self, topic: str) -> int:
        """How many partitions `topic` has."""

        def count(consumer: Consumer) -> int:
            metadata = consumer.list_topics(topic, timeout=10).topics[topic]
            if metadata.error is not None:
                raise KafkaUnavailable(f"topic {topic}: {metadata.error}")
            return len(metadata.partitions)

        return self._ask(count, 10)

    def offset_for(self, partition: int, epoch_ms: int, topic: str | None = None) -> int:
        """The first offset whose timestamp is at or after `epoch_ms`, or -1 if none is."""
        tp = TopicPartition(topic or self.topic.name, partition, max(0, epoch_ms))
        found = self._ask(lambda c: c.offsets_for_times([tp], timeout=10), 10)
        return int(found[0].offset)

    def timestamp_at(self, partition: int, offset: int, topic: str | None = None) -> int | None:
        """The timestamp of the first record at or after `offset` (ms), None if none came."""
        name = topic or self.topic.name

        def first(consumer: Consumer) -> int | None:
            self._assign(consumer, name, partition, offset)
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline:
                msg = consumer.poll(_POLL)
                if msg is not None and msg.error() is None:
                    self._assigned = (name, partition, (msg.offset() or 0) + 1)
                    return int(msg.timestamp()[1])
            return None

        return self._ask(first, 5)

    def read(
        self,
        partition: int,
        start: int,
        end: int,
        *,
        max_bytes: int,
        max_records: int,
        timeout: float,
    ) -> Chunk[T]:
        """Records of `partition` in [start, end): at most `max_records`, and no more once
        `max_bytes` of values are held (one record may cross it), within `timeout`."""

        def command(consumer: Consumer) -> tuple[list[Message], int, int]:
            return self._read(consumer, partition, start, end, max_bytes, max_records, timeout)

        messages, position, size = self._ask(command, timeout)
        batch = decode_batch(self.topic, messages, self._bridge.bad_records, self._name)
        return Chunk(batch.records, position, size)

    def close(self) -> None:
        """Stop the consumer (waits for it) and give the request's slot back."""
        if self._closed:
            return
        self._closed = True
        self._loop.stop(timeout=5.0)
        self._on_close()

    def _ask(self, command: Callable[[Consumer], R], timeout: float) -> R:
        try:
            return self._loop.submit(command).result(timeout + _ANSWER_MARGIN)
        except TimeoutError:
            raise KafkaUnavailable("Kafka did not answer in time") from None
        except KafkaException as exc:
            raise KafkaUnavailable(f"Kafka refused the read: {exc.args[0]}") from None

    # -- the native thread

    def _assign(self, consumer: Consumer, topic: str, partition: int, offset: int) -> None:
        if self._assigned != (topic, partition, offset):
            consumer.assign([TopicPartition(topic, partition, offset)])
            self._assigned = (topic, partition, offset)

    def _read(
        self,
        consumer: Consumer,
        partition: int,
        start: int,
        end: int,
        max_bytes: int,
        max_records: int,
        timeout: float,
    ) -> tuple[list[Message], int, int]:
        name = self.topic.name
        self._assign(consumer, name, partition, start)
        deadline = time.monotonic() + timeout
        messages: list[Message] = []
        position, size = start, 0
        while position < end and len(messages) < max_records and size < max_bytes:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            msg = consumer.poll(min(left, _POLL))
            if msg is None:
                continue
            if msg.error() is not None:
                messages.append(msg)  # counted as a Kafka error by decode_batch
                continue
            offset = msg.offset() or 0
            position = offset + 1
            self._assigned = (name, partition, position)
            if offset >= end:
                break
            if self._key is not None and msg.key() != self._key:
                continue
            messages.append(msg)
            size += len(msg.value() or b"")
        return messages, position, size


def _never(_batch: object) -> None:
    """A request's consumer never polls by itself, so it never delivers a batch."""


def _always() -> bool:
    return True
