"""A Kafka consumer polled by its own native thread.

A `ConsumerLoop` polls on its native thread and posts batches to the app context through
the runtime; anything else the app wants done with the consumer (assign, seek,
offsets-for-times, which block on the network) is submitted as a command that the
native thread runs between polls, with the result delivered back to the app context.

Each poll's records reach the app context decoded by `records.decode_batch`, the one
path every consumed record takes.
"""

from __future__ import annotations

import collections
import contextlib
import functools
import logging
import threading
import time
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any, Generic, TypeVar

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, Message, TopicPartition

from rts_gateway.bridge.client_state import STATISTICS_INTERVAL_MS, ClientState, read_statistics
from rts_gateway.bridge.records import BadRecords, Batch, Topic, decode_batch
from rts_gateway.bridge.runtime import Runtime

log = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")

# A rebalance callback: runs on the consumer's native thread, inside a poll.
Rebalance = Callable[[Consumer, list[TopicPartition]], None]
WEDGED_SECONDS = 60.0
# How long a native thread waits for the app context to take a batch before it looks at
# its commands and stop flag again (either also wakes it at once).
WAKE_SECONDS = 0.1
ASSIGN_TIMEOUT_SECONDS = 60.0
# A reader that must read (expect_assignment) fails liveness 30 s after Kafka answers
# without its partitions: the retries stay well within that.
ASSIGN_RETRY_MIN_SECONDS, ASSIGN_RETRY_MAX_SECONDS = 1.0, 10.0

# librdkafka logs at syslog levels; map them onto Python's.
_SYSLOG_TO_LOGGING = {0: 50, 1: 50, 2: 50, 3: 40, 4: 30, 5: 20, 6: 20, 7: 10}


class Future(Generic[R]):
    """A result computed on a native thread and awaited in the app context."""

    def __init__(self) -> None:
        self._done = threading.Event()  # created in the app context: green under eventlet
        self._result: R | None = None
        self._error: BaseException | None = None
        self._callbacks: list[Callable[[BaseException | None], None]] = []

    def resolve(self, result: R | None, error: BaseException | None) -> None:
        """Called in the app context (the native thread posts it there)."""
        self._result, self._error = result, error
        self._done.set()
        for callback in self._callbacks:
            callback(error)

    def add_done_callback(self, callback: Callable[[BaseException | None], None]) -> None:
        """Call `callback(error)` in the app context once resolved (error None: success)."""
        if self._done.is_set():
            callback(self._error)
        else:
            self._callbacks.append(callback)

    @property
    def done(self) -> bool:
        return self._done.is_set()

    @property
    def error(self) -> BaseException | None:
        return self._error

    def result(self, timeout: float) -> R:
        if not self._done.wait(timeout):
            raise TimeoutError("the Kafka consumer did not answer in time")
        if self._error is not None:
            raise self._error
        return self._result  # type: ignore[return-value]


def from_beginning(topic: str) -> Callable[[Consumer], dict[int, int]]:
    """A command for a direct consumer: read every partition of `topic` from its
    beginning. It returns each partition's end offset at that moment, so the reader can
    tell when it has caught up with what the topic held (compacted state: cameras,
    sessions)."""

    def assign(consumer: Consumer) -> dict[int, int]:
        metadata = consumer.list_topics(topic, timeout=10).topics[topic]
        if metadata.error is not None:
            raise RuntimeError(f"topic {topic}: {metadata.error}")
        partitions = sorted(metadata.partitions)
        ends = {}
        for p in partitions:
            _low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
            ends[p] = high
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
        return ends

    return assign


class _DeferredLogger:
    """librdkafka's log callback runs on the thread that polls (or flushes) the client;
    log from the app context.

    Under eventlet, logging's locks are green: a native thread that takes one while a
    green thread holds it waits on a hub nobody runs, and keeps it from everyone after
    (the whole app context stops at its next log line)."""

    def __init__(self, runtime: Runtime, name: str) -> None:
        self._runtime = runtime
        self._log = logging.getLogger(f"librdkafka.{name}")

    def log(self, level: int, fmt: str, *args: Any) -> None:
        self._runtime.call_soon_threadsafe(
            self._log.log, _SYSLOG_TO_LOGGING.get(level, level), fmt % args
        )


def native_callbacks(
    config: Mapping[str, Any], runtime: Runtime, name: str, bad_records: BadRecords
) -> dict[str, Any]:
    """`config` with librdkafka's callbacks (logs, errors) handed to the app context, for
    a client polled, flushed or closed on a native thread."""
    return {k: v for k, v in config.items() if k != "logger"} | {
        "logger": _DeferredLogger(runtime, name),
        "error_cb": lambda err: runtime.call_soon_threadsafe(bad_records.kafka_error, err, name),
    }


class ConsumerLoop(Generic[T]):
    """A confluent-kafka consumer of one topic, polled by its own native thread.

    `on_batch` runs in the app context with the decoded records of each poll. With
    `store_offsets`, the offsets of a batch are stored (for the group's next commit) only
    after `on_batch` returned: a record counts as consumed once it was applied. With
    `dead_letters`, records that break the topic's contract are kept in the dead-letter
    topic.

    Its health (`problem`) includes what it is for: a group member that has been outside
    its group, or a direct reader that has not been reading what it was assigned, for
    `liveness_seconds` while the brokers answer (`kafka_since`) has failed, whatever the
    cause. librdkafka's statistics (client_state.py) say where the client stands. A group
    member whose client cannot even find its coordinator for a third of that time is
    given a new client: librdkafka 2.16 can lose every broker it knows to a metadata
    answer that lists none (a KRaft broker briefly fenced, as after a freeze) and then
    never look for one again while a commit waits for the coordinator.
    """

    def __init__(
        self,
        runtime: Runtime,
        config: dict[str, Any],
        topic: Topic[T],
        on_batch: Callable[[Batch[T]], None],
        bad_records: BadRecords,
        *,
        name: str,
        batch_size: int = 200,
        poll_timeout: float = 0.1,
        max_pending_batches: int = 2,
        paused: Callable[[], bool] | None = None,
        store_offsets: bool = False,
        dead_letters: bool = False,
        liveness_seconds: float = 30.0,
        kafka_since: Callable[[], float | None] | None = None,
        expect_assignment: bool = False,
    ) -> None:
        self.name = name
        self.topic = topic
        self._runtime = runtime
        self._on_batch = on_batch
        self._bad = bad_records
        self._batch_size = batch_size
        self._poll_timeout = poll_timeout
        self._max_pending = max_pending_batches
        self._paused_when = paused
        self._store_offsets = store_offsets
        self._dead_letters = dead_letters
        self._commands: collections.deque[tuple[Callable[[Consumer], Any], Future[Any]]] = (
            collections.deque()
        )
        # The end offsets of the batches applied, for the native thread to store (each
        # append and popleft is atomic: no lock between the threads).
        self._applied: collections.deque[dict[int, int]] = collections.deque()
        # Set by the app context when it took a batch or submitted a command: the native
        # thread waits on it while the app context is behind, instead of sleeping.
        self._wake = runtime.native_event()
        # Counts are touched by both threads; plain ints are atomic enough under the GIL
        # for a backlog heuristic.
        self._posted = 0
        self._handled = 0
        self._stop = False
        self._started = False
        # Liveness, written by the native thread (single float assignments): when it last
        # went round its loop, and since when the app context has not taken its batches.
        self._beat = 0.0
        self._blocked_since: float | None = None
        self._stopped = Future[None]()
        # Partitions revoked or lost during the current poll (native thread only).
        self._revoked: set[int] = set()
        self._config = native_callbacks(config, runtime, name, bad_records) | {
            "statistics.interval.ms": STATISTICS_INTERVAL_MS
        }
        self.consumer: Consumer | None = None
        # What the loop is for, and how it is doing at it. Written by the native thread
        # (single assignments), read anywhere.
        self.liveness_seconds = liveness_seconds
        self._started_at = 0.0
        self._kafka_since = kafka_since or (lambda: self._started_at)
        self._expect_assignment = expect_assignment
        self.state: ClientState | None = None  # the newest statistics of the current client
        self._generation = 0  # of the client: statistics of a retired one are ignored
        self._subscription: dict[str, Rebalance] | None = None
        self._owned: set[int] = set()  # partitions the group gave this member
        self._outside_since: float | None = None  # group members: not in the group since
        self._callback_since: float | None = None  # a rebalance callback runs since
        self._unread_since: float | None = None  # direct readers: not reading since
        self._renew_requested: str | None = None
        self._renewed_at = 0.0
        self.renewals = 0
        # App context: wall-clock time of the newest record handed to `on_batch`.
        self.last_record_at: float | None = None

    @property
    def config(self) -> Mapping[str, Any]:
        """The consumer's configuration (read-only): its delivery semantics."""
        return MappingProxyType(self._config)

    @property
    def group_id(self) -> str:
        return str(self._config["group.id"])

    @property
    def keeps_dead_letters(self) -> bool:
        return self._dead_letters

    @property
    def in_group(self) -> bool | None:
        """Whether this group member is in its group now (None: not a group member)."""
        if self._subscription is None:
            return None
        return self._outside_since is None and self._callback_since is None

    def start(self) -> ConsumerLoop[T]:
        self._started = True
        self._beat = self._started_at = time.monotonic()
        self._runtime.start_native_thread(self._run, f"kafka-{self.name}")
        return self

    def submit(self, command: Callable[[Consumer], R]) -> Future[R]:
        """Run `command(consumer)` on the consumer's thread before its next poll."""
        future: Future[R] = Future()
        self._commands.append((command, future))
        self._wake.set()
        return future

    def subscribe(
        self,
        *,
        on_assign: Rebalance | None = None,
        on_revoke: Rebalance | None = None,
        on_lost: Rebalance | None = None,
    ) -> None:
        """Join the consumer's group for its topic. The callbacks run on the native thread
        during a poll, so they may call Kafka (without `on_assign`, the partitions are
        assigned from the committed offsets).

        A poll can return records fetched before a rebalance that it ran revoked their
        partition: those are dropped here, never delivered, since the partition's next
        owner reads them from its own position. The callbacks of a client this loop has
        replaced are not passed on (its partitions were given up when it was)."""

        def rebalancing(handler: Rebalance | None, kind: str) -> Rebalance:
            def callback(consumer: Consumer, partitions: list[TopicPartition]) -> None:
                if consumer is not self.consumer:
                    return  # a retired client, closing
                numbers = {tp.partition for tp in partitions}
                if kind == "assign":
                    self._owned |= numbers
                else:
                    self._owned -= numbers
                    self._revoked |= numbers
                self._callback_since = time.monotonic()
                try:
                    if handler is not None:
                        handler(consumer, partitions)
                finally:
                    self._callback_since = None
                    if kind == "assign":
                        # Assigned by the group: a member of it (until told otherwise).
                        self._outside_since = None
                    elif kind == "lost":
                        self._outside_since = self._outside_since or time.monotonic()

            return callback

        callbacks = {
            "on_assign": rebalancing(on_assign, "assign"),
            "on_revoke": rebalancing(on_revoke, "revoke"),
            "on_lost": rebalancing(on_lost, "lost"),
        }

        def join(consumer: Consumer) -> None:
            self._subscription = callbacks
            self._outside_since = time.monotonic()
            consumer.subscribe([self.topic.name], **callbacks)

        self.submit(join)

    def assign_until_done(
        self, command: Callable[[Consumer], R], on_assigned: Callable[[R], None], *, what: str
    ) -> None:
        """Run the assignment `command` (a direct reader's partitions), and again, with
        backoff, until it succeeds: a broker that does not answer yet (the gateway started
        during an outage) must not leave the reader without partitions for good. Then
        `on_assigned(result)` in the app context."""
        self._runtime.spawn(self._assign_until_done, command, on_assigned, what)

    def _assign_until_done(
        self, command: Callable[[Consumer], R], on_assigned: Callable[[R], None], what: str
    ) -> None:
        delay = ASSIGN_RETRY_MIN_SECONDS
        while not self._stop:
            try:
                result = self.submit(command).result(ASSIGN_TIMEOUT_SECONDS)
            except Exception as exc:  # noqa: BLE001 - said, and tried again
                log.warning(
                    f"cannot read {what} yet", extra={"error": repr(exc), "retry_in": delay}
                )
                self._runtime.sleep(delay)
                delay = min(ASSIGN_RETRY_MAX_SECONDS, delay * 2)
                continue
            on_assigned(result)
            return

    def renew(self, reason: str) -> None:
        """Replace the Kafka client with a new one before the next poll (a group member
        joins again, a direct reader reads on from where it was)."""
        self._renew_requested = reason

    def request_stop(self) -> None:
        """Ask the thread to stop polling and close the consumer; returns at once."""
        self._stop = True
        self._wake.set()

    @property
    def stopping(self) -> bool:
        return self._stop

    def wait_stopped(self, timeout: float) -> None:
        """Wait until the consumer is closed (a group member has left its group)."""
        if not self._started:
            return
        try:
            self._stopped.result(timeout)
        except TimeoutError:
            log.warning("consumer did not stop in time", extra={"consumer": self.name})

    def stop(self, timeout: float = 10.0) -> None:
        """Stop polling and close the consumer (commits, if the config says so)."""
        self.request_stop()
        self.wait_stopped(timeout)

    @property
    def backlog(self) -> int:
        return self._posted - self._handled

    def stalled_seconds(self, now: float) -> float:
        """How long this loop has not been doing its job while the brokers answer: a group
        member outside its group (or stuck in a rebalance callback), a direct reader not
        reading what it was assigned. 0 while it does, or while Kafka does not answer
        (an outage is readiness's business, not liveness's)."""
        if not self._started or self._stop:
            return 0.0
        if self._subscription is not None:
            marks = [self._outside_since, self._callback_since]
        else:
            marks = [self._unread_since]
        since = min((m for m in marks if m is not None), default=None)
        kafka = self._kafka_since()
        if since is None or kafka is None:
            return 0.0
        return max(0.0, now - max(since, kafka))

    def problem(self, now: float) -> str | None:
        """Why this loop is not doing its job (None while it is, or before it started).

        Polls return within a second and commands within their own timeouts (10 s at
        most), so a loop silent for WEDGED_SECONDS is stuck; so is one whose batches the
        app context has not taken for as long; so is one stalled (`stalled_seconds`) for
        `liveness_seconds`.
        """
        if not self._started or self._stop:
            return None
        if self._stopped.done:
            return f"exited: {self._stopped.error!r}"
        if now - self._beat > WEDGED_SECONDS:
            return f"no poll for {now - self._beat:.0f}s"
        blocked = self._blocked_since
        if blocked is not None and now - blocked > WEDGED_SECONDS:
            return f"batches not taken for {now - blocked:.0f}s"
        stalled = self.stalled_seconds(now)
        if stalled > self.liveness_seconds:
            return self._stalled_because(stalled)
        return None

    def _stalled_because(self, stalled: float) -> str:
        state = self.state
        if self._subscription is None:
            detail = (state.unread or "nothing assigned") if state else "no statistics yet"
            return (
                f"not reading {self.topic.name} for {stalled:.0f}s while Kafka answers ({detail})"
            )
        if self._callback_since is not None:
            detail = "in a rebalance callback"
        else:
            detail = state.describe() if state else "no statistics yet"
        return (
            f"outside its group {self.group_id} for {stalled:.0f}s while Kafka answers ({detail})"
        )

    # -- the native thread: Kafka calls and nothing that touches the app context

    def _client(self) -> Consumer:
        self._generation += 1
        generation = self._generation
        return Consumer(self._config | {"stats_cb": lambda raw: self._observe(generation, raw)})

    def _run(self) -> None:
        error: BaseException | None = None
        try:
            self.consumer = self._client()
            self._loop(self.consumer)
        except BaseException as exc:  # noqa: BLE001 - reported to the app context below
            error = exc
        finally:
            if self.consumer is not None:
                try:
                    self.consumer.close()
                except Exception as exc:  # noqa: BLE001 - closing a dead consumer
                    error = error or exc
            self._runtime.call_soon_threadsafe(self._stopped.resolve, None, error)

    def _loop(self, consumer: Consumer) -> None:
        self.consumer = consumer
        while not self._stop:
            self._beat = time.monotonic()
            consumer = self._maybe_renew(consumer, self._beat)
            while self._commands:
                command, future = self._commands.popleft()
                try:
                    result, failure = command(consumer), None
                except Exception as exc:  # noqa: BLE001 - the awaiting side re-raises it
                    result, failure = None, exc
                self._runtime.call_soon_threadsafe(future.resolve, result, failure)
            if self._applied:
                self._store_applied(consumer)
            if self.backlog >= self._max_pending:
                # The app context is behind: stop fetching rather than queueing unboundedly,
                # and fetch again the moment it takes a batch.
                self._blocked_since = self._blocked_since or self._beat
                self._wake.wait(WAKE_SECONDS)
                self._wake.clear()
                continue
            self._blocked_since = None
            if self._paused_when and self._paused_when():
                self._runtime.native_sleep(0.01)
                continue
            # poll() returns as soon as one message is there; consume(n, timeout) would
            # wait for n messages or the whole timeout, delivering live video in bursts.
            self._revoked.clear()
            first = consumer.poll(self._poll_timeout)
            if first is None:
                continue
            messages = [first, *consumer.consume(self._batch_size - 1, 0)]
            if self._revoked:
                messages = self._without_revoked(messages)
                if not messages:
                    continue
            self._posted += 1
            self._runtime.call_soon_threadsafe(self._deliver, messages)

    def _store_applied(self, consumer: Consumer) -> None:
        """Store the offsets after what the app context applied (the group's next commit
        takes them); a partition given up meanwhile is its next owner's."""
        ends: dict[int, int] = {}
        while self._applied:
            ends.update(self._applied.popleft())
        offsets = [TopicPartition(self.topic.name, p, o) for p, o in ends.items()]
        with contextlib.suppress(KafkaException):
            consumer.store_offsets(offsets=offsets)

    def _observe(self, generation: int, raw: str) -> None:
        """librdkafka's statistics callback (inside a poll of this thread)."""
        if generation != self._generation:
            return
        state = read_statistics(raw)
        self.state = state
        now = time.monotonic()
        if self._subscription is not None:
            consumer = self.consumer
            member = consumer.memberid() if consumer is not None else None
            # Waiting in a rebalance with a member id is being in the group (a slow peer
            # holds every member up alike); no coordinator or no member id is not.
            inside = state.coordinator_up and bool(member)
            self._outside_since = None if inside else (self._outside_since or now)
        else:
            reading = state.reading and (state.assigned > 0 or not self._expect_assignment)
            self._unread_since = None if reading else (self._unread_since or now)

    def _maybe_renew(self, consumer: Consumer, now: float) -> Consumer:
        reason = self._renew_requested
        if reason is None and self._subscription is not None and self._callback_since is None:
            stalled = self.stalled_seconds(now)
            renew_after = self.liveness_seconds / 3
            state = self.state
            lost = state is None or not state.coordinator_up
            if lost and stalled >= renew_after and now - self._renewed_at >= renew_after:
                where = state.describe() if state else "no statistics"
                reason = (
                    f"outside its group for {stalled:.0f}s while Kafka answers, and its "
                    f"client finds no coordinator ({where})"
                )
        if reason is None:
            return consumer
        self._renew_requested = None
        return self._renew(consumer, reason, now)

    def _renew(self, old: Consumer, reason: str, now: float) -> Consumer:
        assignment = [] if self._subscription is not None else old.assignment()
        positions = old.position(assignment) if assignment else []
        lost = sorted(self._owned)
        self.consumer = new = self._client()
        self.state = None
        self.renewals += 1
        self._renewed_at = now
        self._runtime.call_soon_threadsafe(
            functools.partial(
                log.warning,
                "replacing the Kafka client of a consumer",
                extra={"consumer": self.name, "reason": reason},
            )
        )
        if self._subscription is not None:
            if lost and "on_lost" in self._subscription:
                # The old client's partitions are gone with it: tell their owner as the
                # group would have. Callbacks only pass for the current client, the new
                # one; the old one's are ignored from now on.
                gone = [TopicPartition(self.topic.name, p) for p in lost]
                self._subscription["on_lost"](new, gone)
            self._owned.clear()
            new.subscribe([self.topic.name], **self._subscription)
        elif positions:
            new.assign(positions)
        self._runtime.start_native_thread(lambda: _close_quietly(old), f"kafka-{self.name}-old")
        return new

    def _without_revoked(self, messages: list[Message]) -> list[Message]:
        kept = [m for m in messages if m.partition() not in self._revoked]
        if len(kept) < len(messages):
            self._runtime.call_soon_threadsafe(
                self._bad.revoked, self.topic.name, len(messages) - len(kept)
            )
        return kept

    # -- the app context

    def _deliver(self, messages: list[Message]) -> None:
        self.last_record_at = time.time()
        try:
            batch = decode_batch(
                self.topic, messages, self._bad, self.name, dead_letters=self._dead_letters
            )
            self._on_batch(batch)
            if self._store_offsets and batch.ends:
                self._applied.append(batch.ends)
        finally:
            self._handled += 1
            self._wake.set()


def _close_quietly(consumer: Consumer) -> None:
    """Close a replaced client on a thread of its own: a client that lost its way may take
    long to leave, and nothing waits for it."""
    with contextlib.suppress(Exception):  # it was given up already
        consumer.close()
