"""The gateway's way to Kafka: consumer and producer configs, the loops, the broker check.

Features ask the bridge for the clients they need and say next to the request which
delivery semantics they chose; the bridge holds what every client shares (connection
and security settings, the runtime whose native threads run the Kafka calls, one error
path for bad records) and watches the broker and the event loop for readiness and
metrics.
"""

from __future__ import annotations

import logging
import time
import weakref
from collections.abc import Callable
from typing import Any, TypeVar

from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition
from rts_common.contracts import DEAD_LETTERS, VIDEO_CAMERAS, DeadLetter, TopicSpec
from rts_common.kafka import KafkaSettings
from rts_common.logs import Throttle
from rts_common.tasks import PeriodicTask

from rts_gateway.bridge.consumer import ConsumerLoop, native_callbacks
from rts_gateway.bridge.records import BadRecords, Batch, Topic
from rts_gateway.bridge.runtime import Runtime
from rts_gateway.metrics import GatewayMetrics

log = logging.getLogger(__name__)

T = TypeVar("T")

LOOP_TICK = 0.1
BROKER_CHECK_SECONDS = 5.0
GREEN_THREADS_SECONDS = 10.0
# The heap walk that counts green threads may take this share of the event loop's time.
GREEN_THREADS_SHARE = 0.005
# The broker check's own client is replaced after this many failed checks in a row: a
# client that lost every broker it knew (see consumer.py) must not be taken for an outage.
PROBE_RENEW_AFTER_FAILURES = 3
CONSUMER_METRICS_SECONDS = 1.0


class DeadLetterProducer:
    """Keeps refused records in the dead-letter topic without ever blocking a consumer.

    Delivery: acks=all and idempotent, since a dead letter is kept for someone to read
    later; made on the first refused record. The refused record's offset is committed
    whether or not its dead letter arrives: a failure is counted (result "failed" or
    "dropped" when the local queue is full) and logged, never retried forever.
    """

    def __init__(self, bridge: KafkaBridge) -> None:
        self._bridge = bridge
        self._topic = bridge.topic(DEAD_LETTERS).name
        self._producer: Producer | None = None
        self._counts = bridge.metrics.dead_letters

    def keep(self, letter: DeadLetter) -> None:
        if self._producer is None:
            self._producer = self._bridge.producer(
                "dead-letters",
                **{
                    "acks": "all",
                    "enable.idempotence": True,
                    "linger.ms": 50,
                    "queue.buffering.max.kbytes": 32 * 1024,
                },
            )
        try:
            self._producer.produce(
                self._topic,
                value=letter.value,
                key=letter.key,
                headers=letter.headers(),
                on_delivery=lambda err, _msg: self._counts.labels(
                    topic=letter.topic, result="failed" if err else "kept"
                ).inc(),
            )
        except BufferError:
            self._counts.labels(topic=letter.topic, result="dropped").inc()
        self._producer.poll(0)

    def poll(self) -> None:
        if self._producer is not None:
            self._producer.poll(0)

    def flush(self, timeout: float) -> None:
        if self._producer is not None:
            self._producer.flush(timeout)


class KafkaBridge:
    def __init__(
        self,
        settings: KafkaSettings,
        runtime: Runtime,
        metrics: GatewayMetrics,
        *,
        liveness_seconds: float = 30.0,
    ) -> None:
        """`liveness_seconds`: how long a consumer may be outside its group, or not read what
        it was assigned, while Kafka answers, before liveness calls it failed."""
        self.settings = settings
        self.runtime = runtime
        self.metrics = metrics
        self.liveness_seconds = liveness_seconds
        self.dead_letters = DeadLetterProducer(self)
        self.bad_records = BadRecords(metrics, self.dead_letters)
        self.kafka_ok = False
        self.kafka_error: str | None = None
        # Since when (monotonic) the brokers have answered every check; None while not.
        self._kafka_up_since: float | None = None
        self._failed_checks = 0
        self._loops: weakref.WeakSet[ConsumerLoop[Any]] = weakref.WeakSet()
        self._renewals: dict[str, int] = {}
        # An idle consumer that only asks for metadata: is any broker answering? Never
        # assigned (any topic would do).
        self._probe = self.direct_consumer(
            self.topic(VIDEO_CAMERAS), lambda _batch: None, name="probe", poll_timeout=0.5
        )
        self._tasks = [
            PeriodicTask("kafka-check", BROKER_CHECK_SECONDS, self._check_brokers, first_delay=0),
            PeriodicTask("loop-lag", LOOP_TICK, self._measure_loop_lag),
            # Walks every object of the process, holding up everything else meanwhile:
            # at most every GREEN_THREADS_SECONDS, and less often the longer it takes.
            PeriodicTask(
                "green-threads", GREEN_THREADS_SECONDS, self._count_green_threads, first_delay=0
            ),
            PeriodicTask("consumer-metrics", CONSUMER_METRICS_SECONDS, self._measure_consumers),
        ]
        self._last_tick = time.monotonic()
        self._next_count = 0.0
        self._commit_errors = Throttle(60.0)
        self._reachability: list[Callable[[bool], None]] = []

    def on_reachability(self, listener: Callable[[bool], None]) -> None:
        """Call `listener(kafka_ok)` in the app context whenever the brokers stop or start
        answering."""
        self._reachability.append(listener)

    def topic(self, spec: TopicSpec[T]) -> Topic[T]:
        return Topic(spec, self.settings.topic_name(spec))

    # -- clients

    def direct_consumer(
        self,
        topic: Topic[T],
        on_batch: Callable[[Batch[T]], None],
        *,
        name: str,
        queued_kbytes: int = 8 * 1024,
        **loop_options: Any,
    ) -> ConsumerLoop[T]:
        """A consumer that reads by direct assignment: no group membership, no commits."""
        config = self.settings.client_config(f"gateway-{name}") | {
            # librdkafka insists on a group id even for consumers that never join a group.
            "group.id": f"gateway-direct-{name}",
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            # Bound what librdkafka prefetches per partition: frames are large.
            "queued.max.messages.kbytes": queued_kbytes,
            "fetch.wait.max.ms": 50,
        }
        return self._loop(config, topic, on_batch, name, loop_options)

    def group_consumer(
        self,
        topic: Topic[T],
        on_batch: Callable[[Batch[T]], None],
        *,
        name: str,
        group_id: str,
        start: str,
        session_timeout: float = 45.0,
        **loop_options: Any,
    ) -> ConsumerLoop[T]:
        """A member of `group_id`: offsets stored once a batch was applied, committed every
        2 s, and by librdkafka before a partition is given up in a rebalance; records that
        break the contract are kept as dead letters. A member that stops heartbeating (a
        crash) loses its partitions after `session_timeout` seconds.

        A failed commit (the group rebalancing, the coordinator moving) is counted and
        otherwise left alone: the stored offsets go with the next commit, and until then
        the partition's next owner reads a few records again, which is at-least-once."""
        config = self.settings.client_config(f"gateway-{name}") | {
            "group.id": group_id,
            "partition.assignment.strategy": "cooperative-sticky",
            "auto.offset.reset": start,
            "enable.auto.commit": True,
            "enable.auto.offset.store": False,
            "auto.commit.interval.ms": 2000,
            "session.timeout.ms": int(session_timeout * 1000),
            "queued.max.messages.kbytes": 16 * 1024,
            "on_commit": lambda err, partitions: self.runtime.call_soon_threadsafe(
                self._committed, name, err, partitions
            ),
        }
        options = {"store_offsets": True, "dead_letters": True, **loop_options}
        return self._loop(config, topic, on_batch, name, options)

    def plain_consumer(self, name: str, **overrides: Any) -> Consumer:
        """A consumer for blocking reads by direct assignment on a native thread of the
        caller's: no group membership, no commits, no loop."""
        config = self.settings.client_config(f"gateway-{name}") | {
            "group.id": f"gateway-direct-{name}",
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
        }
        return Consumer(native_callbacks(config | overrides, self.runtime, name, self.bad_records))

    def producer(self, name: str, **overrides: Any) -> Producer:
        """A producer whose logs and errors reach the app context whichever thread polls or
        flushes it."""
        config = self.settings.client_config(f"gateway-{name}") | overrides
        return Producer(native_callbacks(config, self.runtime, name, self.bad_records))

    def _loop(
        self,
        config: dict[str, Any],
        topic: Topic[T],
        on_batch: Callable[[Batch[T]], None],
        name: str,
        options: dict[str, Any],
    ) -> ConsumerLoop[T]:
        def counted(batch: Batch[T]) -> None:
            self.metrics.dispatch_backlog.set(self.runtime.pending())
            on_batch(batch)

        loop = ConsumerLoop(
            self.runtime,
            config,
            topic,
            counted,
            self.bad_records,
            name=name,
            liveness_seconds=self.liveness_seconds,
            kafka_since=self.kafka_since,
            **options,
        )
        self._loops.add(loop)
        return loop

    @property
    def loops(self) -> list[ConsumerLoop[Any]]:
        """Every consumer loop made here and still referenced, by name."""
        return sorted(self._loops, key=lambda loop: loop.name)

    # -- lifecycle

    def start(self) -> None:
        """Watch the brokers and the event loop."""
        self._probe.start()
        self._last_tick = time.monotonic()
        for task in self._tasks:
            task.start()

    def components(self) -> list[ConsumerLoop[Any] | PeriodicTask]:
        return [self._probe, *self._tasks]

    def request_stop(self) -> None:
        for task in self._tasks:
            task.stop(timeout=0)
        self._probe.request_stop()

    def wait_stopped(self, deadline: float) -> None:
        self.dead_letters.flush(max(0.1, (deadline - time.monotonic()) / 2))
        self._probe.wait_stopped(max(0.1, deadline - time.monotonic()))

    # -- health

    def readiness(self) -> tuple[bool, dict[str, Any]]:
        details: dict[str, Any] = {"kafka": self.kafka_ok}
        if not self.kafka_ok and (self.bad_records.refused or self.kafka_error):
            details["kafka_error"] = self.bad_records.refused or self.kafka_error
        return self.kafka_ok, details

    def _check_brokers(self) -> None:
        self.dead_letters.poll()

        def brokers(consumer: Consumer) -> int:
            return len(consumer.list_topics(timeout=4).brokers)

        try:
            ok, error = self._probe.submit(brokers).result(6.0) > 0, None
        except Exception as exc:  # noqa: BLE001 - any failure means "not reachable"
            ok, error = False, str(exc)
        self._failed_checks = 0 if ok else self._failed_checks + 1
        if self._failed_checks >= PROBE_RENEW_AFTER_FAILURES:
            self._failed_checks = 0
            self._probe.renew(f"{PROBE_RENEW_AFTER_FAILURES} broker checks failed in a row")
        if ok and self._kafka_up_since is None:
            self._kafka_up_since = time.monotonic()
        elif not ok:
            self._kafka_up_since = None
        changed = ok != self.kafka_ok
        if self.kafka_ok and not ok:
            log.warning("Kafka is not reachable", extra={"error": error})
        elif ok and not self.kafka_ok:
            log.info("Kafka is reachable")
        if ok:
            self.bad_records.refused = None
        self.kafka_ok, self.kafka_error = ok, error
        if changed:
            for listener in self._reachability:
                listener(ok)

    def kafka_since(self) -> float | None:
        """Since when (monotonic) the brokers have answered every check without a break;
        None while they do not."""
        return self._kafka_up_since

    def _measure_consumers(self) -> None:
        now = time.monotonic()
        m = self.metrics
        for loop in self.loops:
            if loop.state is None and loop.in_group is None and loop.last_record_at is None:
                continue  # not polling (a request's own read, paused between its commands)
            name = loop.name
            m.consumer_stalled.labels(consumer=name).set(round(loop.stalled_seconds(now), 1))
            if (in_group := loop.in_group) is not None:
                m.consumer_in_group.labels(consumer=name).set(int(in_group))
            if loop.last_record_at is not None:
                m.consumer_last_record.labels(consumer=name).set(loop.last_record_at)
            renewals = loop.renewals - self._renewals.get(name, 0)
            if renewals > 0:
                m.client_renewals.labels(consumer=name).inc(renewals)
            self._renewals[name] = loop.renewals

    def _count_green_threads(self) -> None:
        started = time.monotonic()
        if started < self._next_count:
            return
        self.metrics.green_threads.set(self.runtime.green_threads())
        took = time.monotonic() - started
        self._next_count = started + took / GREEN_THREADS_SHARE

    def _committed(
        self, consumer: str, error: KafkaError | None, partitions: list[TopicPartition]
    ) -> None:
        errors = [error, *(tp.error for tp in partitions)]
        # _NO_OFFSET: there was nothing new to commit.
        failures = [e for e in errors if e is not None and e.code() != KafkaError._NO_OFFSET]
        if not failures:
            return
        failure = failures[0]
        self.metrics.commit_failures.labels(consumer=consumer, error=failure.name()).inc()
        if self._commit_errors.allow((consumer, failure.code())):
            log.warning(
                "offset commit failed", extra={"consumer": consumer, "error": failure.str()}
            )

    def _measure_loop_lag(self) -> None:
        now = time.monotonic()
        self.metrics.loop_lag.observe(max(0.0, now - self._last_tick - LOOP_TICK))
        self._last_tick = now
