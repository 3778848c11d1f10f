"""A Socket.IO client manager backed by Kafka (confluent-kafka), for many gateway replicas.

python-socketio's pub/sub pattern: every `emit` is delivered to this replica's clients
and published; every replica listens and delivers what the others published to its own
clients, so a browser connected anywhere sees everything. The base class does the
Socket.IO side; this backend only publishes and listens, like the library's own
Redis and Kafka backends, with these differences:

- messages are JSON (never pickle), and a record that is not valid JSON is counted and
  skipped instead of silently swallowed; a replica's own records (header `host`) are
  skipped unread (it delivered them to its clients when it emitted them);
- publishing never blocks: messages are batched into one Kafka record per flush interval
  (cheap under load), and a full producer queue drops the batch and counts it;
- listening runs on a native thread (see bridge/runtime.py), every partition from its end, no
  consumer group: each replica must see every message.
"""

from __future__ import annotations

import collections
import dataclasses
import logging
import queue
from collections.abc import Iterator
from typing import Any

import msgspec
import socketio
from confluent_kafka import OFFSET_END, Consumer, KafkaError, Message, TopicPartition
from rts_common.contracts import Headers
from rts_common.logs import Throttle
from rts_common.tasks import PeriodicTask

from rts_gateway.bridge import Batch, ConsumerLoop, KafkaBridge, Topic
from rts_gateway.fanout import FanoutManager

log = logging.getLogger(__name__)

PubSubMessage = dict[str, Any]


# Published through Kafka by PubSubManager; delivered to this replica's own clients by
# the fan-out (FanoutManager.emit, next in line after PubSubManager).
class KafkaBroadcastManager(socketio.PubSubManager, FanoutManager):  # type: ignore[misc]
    name = "kafka"

    def __init__(
        self,
        bridge: KafkaBridge,
        topic: Topic[list[PubSubMessage]],
        *,
        flush_interval: float = 0.02,
    ) -> None:
        super().__init__(channel=topic.name)
        self._metrics = bridge.metrics
        # Emits append from any thread of the app context; the flusher drains. A deque's
        # append and popleft are atomic, so no emit is lost between the two.
        self._pending: collections.deque[PubSubMessage] = collections.deque()
        self._received: queue.Queue[PubSubMessage] = queue.Queue()
        # A lost dashboard update is replaced by the next one within a second: acks=1,
        # a short timeout, and a bounded queue that drops (and counts) rather than blocks.
        self._producer = bridge.producer(
            "broadcast",
            **{
                "linger.ms": 5,
                "compression.type": "lz4",
                "acks": 1,
                "message.timeout.ms": 5000,
                "queue.buffering.max.kbytes": 64 * 1024,
            },
        )
        self._errors = Throttle(60.0)
        self._host_header = [("host", self.host_id.encode())]
        # Every replica must see every message: no group, every partition from its end.
        self._spec_decode = topic.spec.decode
        mine = Topic(dataclasses.replace(topic.spec, decode=self._decode), topic.name)
        self._loop = bridge.direct_consumer(
            mine, self._on_batch, name="broadcast", poll_timeout=0.1, expect_assignment=True
        )
        self._flusher = PeriodicTask("broadcast-flush", flush_interval, self._flush)

    @property
    def consumer(self) -> ConsumerLoop[list[PubSubMessage]]:
        return self._loop

    # -- lifecycle

    def start(self) -> None:
        """Publish from now on, even before any browser connects to this replica."""
        self._flusher.start()

    def initialize(self) -> None:
        """python-socketio's hook, called before the first connection: start listening
        (until then, nobody here could receive what other replicas publish)."""
        super().initialize()
        self._loop.start()
        self._loop.assign_until_done(
            self._assign_from_end, lambda _none: None, what="the broadcast channel"
        )

    def components(self) -> list[ConsumerLoop[list[PubSubMessage]] | PeriodicTask]:
        return [self._loop, self._flusher]

    def request_stop(self) -> None:
        self._flusher.stop(timeout=0)
        self._loop.request_stop()

    def close(self, timeout: float = 3.0) -> None:
        """Publish what is pending (the consumer is stopped apart)."""
        self._flush()
        self._producer.flush(timeout)

    # -- PubSubManager's backend methods

    def _publish(self, data: PubSubMessage) -> None:
        self._pending.append(data)

    def _listen(self) -> Iterator[PubSubMessage]:
        while True:
            yield self._received.get()

    # -- publishing (app context; produce() only queues locally and never blocks)

    def _flush(self) -> None:
        self._producer.poll(0)  # serve delivery callbacks
        if not self._pending:
            return
        batch = [self._pending.popleft() for _ in range(len(self._pending))]
        try:
            self._producer.produce(
                self.channel,
                msgspec.json.encode(batch),
                headers=self._host_header,
                on_delivery=self._delivered,
            )
            self._metrics.broadcast_published.inc(len(batch))
        except BufferError:
            self._metrics.broadcast_dropped.labels(reason="queue_full").inc(len(batch))
        except (TypeError, ValueError, msgspec.EncodeError) as exc:
            self._metrics.broadcast_dropped.labels(reason="unserialisable").inc(len(batch))
            log.error("broadcast message is not JSON-serialisable", extra={"error": str(exc)})

    def _delivered(self, err: KafkaError | None, _msg: Message) -> None:
        if err is not None:
            self._metrics.broadcast_dropped.labels(reason="delivery_failed").inc()
            if self._errors.allow(err.code()):
                log.warning("broadcast delivery failed", extra={"error": err.str()})

    # -- listening

    def _assign_from_end(self, consumer: Consumer) -> None:
        metadata = consumer.list_topics(self.channel, timeout=10).topics[self.channel]
        if metadata.error is not None:
            raise RuntimeError(f"topic {self.channel}: {metadata.error}")
        consumer.assign([TopicPartition(self.channel, p, OFFSET_END) for p in metadata.partitions])

    def _decode(
        self, key: bytes | None, value: bytes | None, headers: Headers | None
    ) -> list[PubSubMessage]:
        """The topic's decoder, except for this replica's own records: nothing to do."""
        if headers and self._host_header[0] in headers:
            return []
        return self._spec_decode(key, value, headers)

    def _on_batch(self, batch: Batch[list[PubSubMessage]]) -> None:
        for record in batch.records:
            for message in record.value:
                self._received.put_nowait(message)
