"""What consumers deliver: decoded records of a topic, and the one path they take there.

Every record goes the same way before a feature sees it: Kafka errors are counted,
partition-end markers dropped, and the value decoded with its topic's own decoder
(`TopicSpec.decode`); a record that breaks its contract is counted and logged once a
minute per reason by `BadRecords`, and the feature receives only good ones, plus how far
each partition was read (bad records included), which is what offsets and "caught up"
need.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Generic, Protocol, TypeVar

from confluent_kafka import KafkaError, Message
from rts_common.contracts import BadMessage, DeadLetter, TopicSpec
from rts_common.kafka import authentication_failed
from rts_common.logs import Throttle

from rts_gateway.metrics import GatewayMetrics

log = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass(frozen=True)
class Topic(Generic[T]):
    """A topic of the contracts under its name in this deployment (with any prefix)."""

    spec: TopicSpec[T]
    name: str


# Not frozen: one is made per consumed record, and a frozen dataclass's __init__ costs
# several times a plain one's.
@dataclass(slots=True)
class Record(Generic[T]):
    """A consumed record whose value passed its topic's decoder."""

    partition: int
    offset: int
    timestamp_ms: int
    key: bytes | None
    raw: bytes | None
    value: T


@dataclass
class Batch(Generic[T]):
    """What one poll delivered: the good records, and for each partition the offset after
    the last record read (bad ones included)."""

    records: list[Record[T]] = field(default_factory=list)
    ends: dict[int, int] = field(default_factory=dict)


class DeadLetters(Protocol):
    """Where refused records are kept (the bridge's dead-letter producer)."""

    def keep(self, letter: DeadLetter) -> None: ...


class BadRecords:
    """Counts and logs what consumers refuse: records that break their contract, and errors
    the Kafka client reports; with `dead_letters`, keeps the refused records of the
    topics that ask for it. Runs in the app context."""

    def __init__(self, metrics: GatewayMetrics, dead_letters: DeadLetters | None = None) -> None:
        self._metrics = metrics
        self._dead_letters = dead_letters
        self._throttle = Throttle(60.0)
        # The last "the cluster refused our credentials", for readiness to say why.
        self.refused: str | None = None

    def bad(self, msg: Message, topic: str, error: BadMessage, *, keep: bool = False) -> None:
        partition, offset = msg.partition() or 0, msg.offset() or 0
        self._metrics.bad_messages.labels(topic=topic, reason=error.reason).inc()
        if self._throttle.allow((topic, error.reason)):
            log.warning(
                "bad record skipped",
                extra={
                    "topic": topic,
                    "partition": partition,
                    "offset": offset,
                    "reason": error.reason,
                    "detail": error.detail[:300],
                    "kept": keep,
                },
            )
        if keep and self._dead_letters is not None:
            letter = DeadLetter(
                error.reason, error.detail, topic, partition, offset, msg.key(), msg.value()
            )
            self._dead_letters.keep(letter)

    def revoked(self, topic: str, count: int) -> None:
        """Records fetched for a partition the same poll revoked: its next owner has them."""
        self._metrics.revoked_records_dropped.labels(topic=topic).inc(count)

    def kafka_error(self, error: KafkaError, consumer: str = "") -> None:
        self._metrics.kafka_errors.labels(code=error.name()).inc()
        refused = authentication_failed(error)
        if refused is not None:
            self.refused = refused
            if self._throttle.allow(("kafka", "authentication")):
                log.error(refused, extra={"consumer": consumer})
        elif error.fatal():
            log.error("fatal Kafka error", extra={"consumer": consumer, "error": error.str()})
        elif self._throttle.allow(("kafka", error.code())):
            log.warning("Kafka error", extra={"consumer": consumer, "error": error.str()})


def decode_batch(
    topic: Topic[T],
    messages: list[Message],
    bad_records: BadRecords,
    consumer: str = "",
    *,
    dead_letters: bool = False,
) -> Batch[T]:
    """The one path of consumed records: errors counted, partition ends dropped, values
    decoded by the topic's decoder, contract breakers counted and skipped (and, with
    `dead_letters`, kept in the dead-letter topic)."""
    batch: Batch[T] = Batch()
    decode = topic.spec.decode
    for msg in messages:
        error = msg.error()
        if error is not None:
            if error.code() != KafkaError._PARTITION_EOF:
                bad_records.kafka_error(error, consumer)
            continue
        partition, offset = msg.partition() or 0, msg.offset() or 0
        batch.ends[partition] = offset + 1
        key, raw, headers = msg.key(), msg.value(), msg.headers()
        try:
            value = decode(key, raw, headers)
        except BadMessage as bad:
            bad_records.bad(msg, topic.name, bad, keep=dead_letters)
            continue
        timestamp_ms = msg.timestamp()[1]
        batch.records.append(Record(partition, offset, timestamp_ms, key, raw, value))
    return batch
