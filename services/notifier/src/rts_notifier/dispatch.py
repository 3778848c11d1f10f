"""Deliveries: one queue and thread per receiver, retries with backoff, dead letters, and
which `video-detections` offsets may be committed.

Delivery semantics: at least once. A record's offset is committed only when every
delivery it caused has been delivered or dead-lettered (`Offsets`), so a notifier that
stops or crashes reads again what was not finished: a receiver may get a message twice,
never lose one silently. A receiver that is down gets its messages when it is back,
retried with doubling waits up to `--max-attempts`; after that, or when it refuses a
message for good (an HTTP 4xx), the record goes to `dead-letters` with the receiver and
the reason. A slow receiver holds only its own queue: the others go on.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from rts_common.tasks import Heartbeat

from rts_notifier.metrics import NotifierMetrics
from rts_notifier.receivers import DeliveryError, Receiver
from rts_notifier.rules import Message

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Source:
    """The record a delivery came from, for its offset and its dead letter."""

    partition: int
    offset: int
    key: bytes | None
    value: bytes | None


DeadLetter = Callable[[Source, Receiver, Message, DeliveryError, int], None]


class Offsets:
    """Per partition, the offsets still owed deliveries; what may be committed."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._owed: dict[int, dict[int, int]] = {}
        self._next: dict[int, int] = {}

    def read(self, partition: int, offset: int, deliveries: int) -> None:
        with self._lock:
            self._next[partition] = max(self._next.get(partition, 0), offset + 1)
            if deliveries:
                self._owed.setdefault(partition, {})[offset] = deliveries

    def done(self, partition: int, offset: int) -> None:
        with self._lock:
            owed = self._owed.get(partition, {})
            if offset in owed:
                owed[offset] -= 1
                if owed[offset] <= 0:
                    del owed[offset]

    def committable(self) -> dict[int, int]:
        """Partition -> the offset to commit: below it, everything was delivered."""
        with self._lock:
            return {p: min(self._owed.get(p) or {nxt: 0}) for p, nxt in self._next.items()}

    def forget(self, partitions: list[int]) -> None:
        """Partitions given up (a rebalance): their owner now is someone else."""
        with self._lock:
            for p in partitions:
                self._owed.pop(p, None)
                self._next.pop(p, None)

    def owed(self) -> int:
        with self._lock:
            return sum(len(o) for o in self._owed.values())


class Dispatcher:
    """A receiver's queue and delivery thread."""

    def __init__(
        self,
        receiver: Receiver,
        offsets: Offsets,
        metrics: NotifierMetrics,
        dead_letter: DeadLetter,
        *,
        queue_max: int,
        retry_first: float,
        retry_max: float,
        max_attempts: int,
    ) -> None:
        self.receiver = receiver
        self._offsets = offsets
        self._metrics = metrics
        self._dead_letter = dead_letter
        self._queue: queue.Queue[tuple[Message, Source | None]] = queue.Queue(queue_max)
        self._retry_first, self._retry_max = retry_first, retry_max
        self._max_attempts = max_attempts
        self._stop = threading.Event()
        self._idle = threading.Event()
        self._idle.set()
        self.heartbeat = Heartbeat(f"deliver-{receiver.name}", max_silence=60.0)
        self._thread = threading.Thread(target=self._run, name=receiver.name, daemon=True)

    def start(self) -> Dispatcher:
        self.heartbeat.beat()
        self._thread.start()
        return self

    @property
    def full(self) -> bool:
        return self._queue.full()

    @property
    def backlog(self) -> int:
        return self._queue.qsize()

    def put(self, message: Message, source: Source | None) -> None:
        self._idle.clear()
        self._queue.put((message, source))
        self._metrics.queued(self.receiver.name).set(self._queue.qsize())

    def drain(self, timeout: float) -> bool:
        """Wait until everything queued was delivered or dead-lettered."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._queue.empty() and self._idle.is_set():
                return True
            time.sleep(0.05)
        return False

    def stop(self) -> None:
        self._stop.set()
        self.heartbeat.done()
        self._thread.join(5)
        self.receiver.close()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.heartbeat.beat()
            try:
                message, source = self._queue.get(timeout=0.5)
            except queue.Empty:
                self._idle.set()
                continue
            self._metrics.queued(self.receiver.name).set(self._queue.qsize())
            if self._deliver(message, source) and source is not None:
                self._offsets.done(source.partition, source.offset)
            if self._queue.empty():
                self._idle.set()

    def _deliver(self, message: Message, source: Source | None) -> bool:
        """True when delivered or dead-lettered; False when stopped half-way (then the
        record is read again after a restart)."""
        name = self.receiver.name
        wait = self._retry_first
        for attempt in range(1, self._max_attempts + 1):
            started = time.perf_counter()
            try:
                self.receiver.send(message)
            except DeliveryError as exc:
                self._metrics.deliveries(name, exc.reason).inc()
                last = exc
                if not exc.retry or attempt == self._max_attempts:
                    break
                if attempt == 1:
                    log.warning(
                        "delivery failed; retrying",
                        extra={
                            "receiver": self.receiver.where,
                            "error": str(exc),
                            "event": message.after.id,
                        },
                    )
                self.heartbeat.beat()
                if self._stop.wait(wait):
                    return False
                wait = min(self._retry_max, wait * 2)
                continue
            self._metrics.deliveries(name, "ok").inc()
            self._metrics.delivery_seconds(name).observe(time.perf_counter() - started)
            if attempt > 1:
                log.info(
                    "delivered after retries",
                    extra={
                        "receiver": self.receiver.where,
                        "attempts": attempt,
                        "event": message.after.id,
                    },
                )
            return True
        log.error(
            "giving up on a delivery; dead-lettered",
            extra={"receiver": self.receiver.where, "error": str(last), "attempts": attempt},
        )
        self._metrics.dead_letters(name).inc()
        if source is not None:
            self._dead_letter(source, self.receiver, message, last, attempt)
        return True
