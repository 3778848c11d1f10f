"""The gateway's Kafka consumers, each owned by one native thread.

Delivery semantics, per consumer:
- Frames (`video-frames`): direct assignment, no group, no commits. A viewer wants the
  newest frame, not the ones it missed, so a pod starts reading a partition about a
  second before "now" and never resumes old positions. At-most-once, by design.
- The camera directory (`video-cameras`): every partition from the beginning, no group;
  the topic is compacted, so that is every camera's newest status.
- Replay: one consumer per replaying viewer, assigned at the offset of the requested
  capture time (offsets-for-times), no group.
The consumer group for playback events and detections lives with the dashboard.

A `ConsumerLoop` polls on its native thread and posts message batches to the app context
through the runtime; anything else the app wants done with the consumer (assign, seek,
offsets-for-times, which block on the network) is submitted as a command that the
native thread runs between polls, with the result delivered back to the app context.
"""

from __future__ import annotations

import collections
import logging
import threading
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from confluent_kafka import Consumer, KafkaError, Message

from rts_gateway.runtime import Runtime

log = logging.getLogger(__name__)

T = TypeVar("T")

# librdkafka logs at syslog levels; map them onto Python's.
_SYSLOG_TO_LOGGING = {0: 50, 1: 50, 2: 50, 3: 40, 4: 30, 5: 20, 6: 20, 7: 10}


class Future(Generic[T]):
    """A result computed on a native thread and awaited in the app context."""

    def __init__(self) -> None:
        self._done = threading.Event()  # created in the app context: green under eventlet
        self._result: T | None = None
        self._error: BaseException | None = None

    def _resolve(self, result: T | None, error: BaseException | None) -> None:
        self._result, self._error = result, error
        self._done.set()

    def result(self, timeout: float) -> T:
        if not self._done.wait(timeout):
            raise TimeoutError("the Kafka consumer did not answer in time")
        if self._error is not None:
            raise self._error
        return self._result  # type: ignore[return-value]


class _DeferredLogger:
    """librdkafka's log callback runs on the polling thread; log from the app context."""

    def __init__(self, runtime: Runtime, name: str) -> None:
        self._runtime = runtime
        self._log = logging.getLogger(f"librdkafka.{name}")

    def log(self, level: int, fmt: str, *args: Any) -> None:
        self._runtime.call_soon_threadsafe(
            self._log.log, _SYSLOG_TO_LOGGING.get(level, level), fmt % args
        )


class ConsumerLoop:
    """A confluent-kafka consumer polled by its own native thread."""

    def __init__(
        self,
        runtime: Runtime,
        config: dict[str, Any],
        on_messages: Callable[[list[Message]], None],
        *,
        name: str,
        batch_size: int = 200,
        poll_timeout: float = 0.1,
        max_pending_batches: int = 2,
        on_error: Callable[[KafkaError], None] | None = None,
        paused: Callable[[], bool] | None = None,
    ) -> None:
        self.name = name
        self._runtime = runtime
        self._on_messages = on_messages
        self._batch_size = batch_size
        self._poll_timeout = poll_timeout
        self._max_pending = max_pending_batches
        self._paused_when = paused
        self._commands: collections.deque[tuple[Callable[[Consumer], Any], Future[Any]]] = (
            collections.deque()
        )
        # Counts are touched by both threads; plain ints are atomic enough under the GIL
        # for a backlog heuristic.
        self._posted = 0
        self._handled = 0
        self._stop = False
        self._started = False
        self._stopped = Future[None]()
        config = {k: v for k, v in config.items() if k != "logger"}
        config["logger"] = _DeferredLogger(runtime, name)
        if on_error is not None:
            config["error_cb"] = lambda err: runtime.call_soon_threadsafe(on_error, err)
        self._config = config
        self.consumer: Consumer | None = None

    def start(self) -> ConsumerLoop:
        self._started = True
        self._runtime.start_native_thread(self._run, f"kafka-{self.name}")
        return self

    def submit(self, command: Callable[[Consumer], T]) -> Future[T]:
        """Run `command(consumer)` on the consumer's thread before its next poll."""
        future: Future[T] = Future()
        self._commands.append((command, future))
        return future

    def request_stop(self) -> None:
        """Ask the thread to stop polling and close the consumer; returns at once."""
        self._stop = True

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

    # -- the native thread: Kafka calls and nothing that touches the app context

    def _run(self) -> None:
        error: BaseException | None = None
        try:
            self.consumer = Consumer(self._config)
            self._loop(self.consumer)
        except BaseException as exc:  # noqa: BLE001 - reported to the app context below
            error = exc
        finally:
            if self.consumer is not None:
                try:
                    self.consumer.close()
                except Exception as exc:  # noqa: BLE001 - closing a dead consumer
                    error = error or exc
            self._runtime.call_soon_threadsafe(self._stopped._resolve, None, error)

    def _loop(self, consumer: Consumer) -> None:
        while not self._stop:
            while self._commands:
                command, future = self._commands.popleft()
                try:
                    result, failure = command(consumer), None
                except Exception as exc:  # noqa: BLE001 - the awaiting side re-raises it
                    result, failure = None, exc
                self._runtime.call_soon_threadsafe(future._resolve, result, failure)
            if self.backlog >= self._max_pending or (self._paused_when and self._paused_when()):
                # The app context is behind: stop fetching rather than queueing unboundedly.
                self._runtime.native_sleep(0.01)
                continue
            # poll() returns as soon as one message is there; consume(n, timeout) would
            # wait for n messages or the whole timeout, delivering live video in bursts.
            first = consumer.poll(self._poll_timeout)
            if first is None:
                continue
            messages = [first, *consumer.consume(self._batch_size - 1, 0)]
            if messages:
                self._posted += 1
                self._runtime.call_soon_threadsafe(self._deliver, messages)

    def _deliver(self, messages: list[Message]) -> None:
        try:
            self._on_messages(messages)
        finally:
            self._handled += 1
