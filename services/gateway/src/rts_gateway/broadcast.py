"""A Socket.IO client manager backed by Kafka (confluent-kafka), for many gateway replicas.

python-socketio's pub/sub pattern: every `emit` is delivered to this replica's clients
and published; every replica listens and delivers what the others published to its own
clients, so a browser connected anywhere sees everything. The base class does the
Socket.IO side; this backend only publishes and listens, like the library's own
Redis and Kafka backends, with these differences:

- messages are JSON (never pickle), and a record that is not valid JSON is counted and
  skipped instead of silently swallowed;
- publishing never blocks: messages are batched into one Kafka record per flush interval
  (cheap under load), and a full producer queue drops the batch and counts it;
- listening runs on a native thread (see runtime.py), every partition from its end, no
  consumer group: each replica must see every message.
"""

from __future__ import annotations

import json
import logging
import queue
from collections.abc import Iterator
from typing import Any

import socketio
from confluent_kafka import OFFSET_END, Consumer, KafkaError, Message, Producer, TopicPartition
from rts_common.logs import Throttle

from rts_gateway.kafka import ConsumerLoop
from rts_gateway.metrics import GatewayMetrics
from rts_gateway.runtime import Runtime

log = logging.getLogger(__name__)


class KafkaBroadcastManager(socketio.PubSubManager):  # type: ignore[misc]
    name = "kafka"

    def __init__(
        self,
        runtime: Runtime,
        topic: str,
        producer_config: dict[str, Any],
        consumer_config: dict[str, Any],
        metrics: GatewayMetrics,
        *,
        flush_interval: float = 0.02,
    ) -> None:
        super().__init__(channel=topic)
        self._runtime = runtime
        self._metrics = metrics
        self._flush_interval = flush_interval
        self._pending: list[dict[str, Any]] = []
        self._received: queue.Queue[dict[str, Any]] = queue.Queue()
        self._producer = Producer(producer_config)
        self._errors = Throttle(60.0)
        self._loop = ConsumerLoop(
            runtime, consumer_config, self._on_records, name="broadcast", poll_timeout=0.1
        )
        self._running = False

    # -- lifecycle (initialize is called by the Socket.IO server once it is attached)

    def initialize(self) -> None:
        super().initialize()
        self._running = True
        self._loop.start()
        self._loop.submit(self._assign_from_end)
        self._runtime.spawn(self._flush_forever)

    @property
    def consumer(self) -> ConsumerLoop:
        return self._loop

    def close(self, timeout: float = 3.0) -> None:
        """Publish what is pending and stop publishing (the consumer is stopped apart)."""
        self._running = False
        self._flush()
        self._producer.flush(timeout)

    # -- PubSubManager's backend methods

    def _publish(self, data: dict[str, Any]) -> None:
        self._pending.append(data)

    def _listen(self) -> Iterator[dict[str, Any]]:
        while True:
            yield self._received.get()

    # -- publishing (app context; produce() only queues locally and never blocks)

    def _flush_forever(self) -> None:
        while self._running:
            self._runtime.sleep(self._flush_interval)
            self._flush()

    def _flush(self) -> None:
        self._producer.poll(0)  # serve delivery callbacks
        if not self._pending:
            return
        batch, self._pending = self._pending, []
        try:
            self._producer.produce(
                self.channel, json.dumps(batch, separators=(",", ":")), on_delivery=self._delivered
            )
            self._metrics.broadcast_published.inc(len(batch))
        except BufferError:
            self._metrics.broadcast_dropped.labels(reason="queue_full").inc(len(batch))
        except (TypeError, ValueError) as exc:
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

    def _on_records(self, records: list[Message]) -> None:
        for record in records:
            if record.error() is not None:
                continue
            try:
                batch = json.loads(record.value() or b"")
            except ValueError:
                batch = None
            if not isinstance(batch, list):
                self._metrics.bad_messages.labels(topic=self.channel, reason="invalid").inc()
                continue
            for message in batch:
                if isinstance(message, dict):
                    self._received.put_nowait(message)
