"""The main loop: simulated events → producer, paced or as fast as possible, until a limit
or a signal; then flush and account for every event."""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import asdict, dataclass
from typing import Protocol

from rts_common.events import EventType
from rts_common.pacing import TokenBucket
from rts_common.tasks import Heartbeat

from rts_eventsim.metrics import EventSimMetrics
from rts_eventsim.simulation import Emitted, Simulator

log = logging.getLogger(__name__)

# Events per batch between producer polls: large enough to amortise the loop, small
# enough that delivery reports and the stop signal are served every few milliseconds.
MAX_BATCH = 1000
# A paced run sends about this often (seconds): see rts_common.pacing.
PACING_INTERVAL = 0.01
GAUGE_INTERVAL = 0.5
PROGRESS_INTERVAL = 30.0


class Sink(Protocol):
    """Where events go (the Kafka publisher; tests pass a list-backed one)."""

    delivered: int
    heartbeat: Heartbeat

    @property
    def failed(self) -> int: ...
    def send(
        self, key: str, value: bytes, event_type: EventType, stop: threading.Event
    ) -> bool: ...
    def poll(self) -> None: ...
    def queued(self) -> int: ...
    def flush(self, timeout: float) -> int: ...


@dataclass(frozen=True)
class Limits:
    count: int = 0  # events; 0: no limit
    duration: float = 0.0  # simulated seconds; 0: no limit
    realtime: bool = True
    # A paced run without a fixed --start-time: the clock starts when the loop does.
    start_now: bool = False
    flush_timeout: float = 10.0


@dataclass(frozen=True)
class Summary:
    sent: int
    delivered: int
    failed: int
    unsent: int
    skipped: int
    wall_seconds: float  # the loop, until the last event was handed to the producer
    flush_seconds: float  # then, until the broker acknowledged the last one
    cpu_seconds: float  # the process's CPU (all threads) over the loop and the flush
    simulated_seconds: float

    @property
    def clean(self) -> bool:
        return self.failed == 0 and self.unsent == 0


class Runner:
    def __init__(
        self,
        simulator: Simulator,
        sink: Sink,
        metrics: EventSimMetrics,
        limits: Limits,
        stop: threading.Event,
    ) -> None:
        self.sim = simulator
        self.sink = sink
        self.metrics = metrics
        self.limits = limits
        self.stop = stop
        self.sent = 0
        self.skipped = 0
        rate = simulator.config.rate
        self.bucket = TokenBucket(rate, capacity=max(1.0, rate)) if limits.realtime else None
        self._batch_target = min(MAX_BATCH, max(1.0, rate * PACING_INTERVAL))
        self._started = time.monotonic()
        self._cpu_started = time.process_time()
        self._sessions_counted = 0
        self.metrics.target_rate.set(rate)

    def run(self) -> Summary:
        self._started = time.monotonic()
        self._cpu_started = time.process_time()
        if self.limits.start_now:
            self.sim.set_origin(time.time_ns())
        if self.bucket is not None:
            self.bucket.restart()
        next_gauges, next_progress = self._started, self._started + PROGRESS_INTERVAL
        while not self.stop.is_set():
            self.sink.heartbeat.beat()
            room = self._room()
            if room <= 0:
                break
            batch = min(room, self._grant())
            if batch and not self._send(batch):
                break
            self.sink.poll()
            now = time.monotonic()
            if now >= next_gauges:
                next_gauges = now + GAUGE_INTERVAL
                self._update_gauges(now)
                if now >= next_progress:
                    next_progress = now + PROGRESS_INTERVAL
                    self._log_progress(now)
        return self._finish()

    def _room(self) -> int:
        """Events left before a limit."""
        room = MAX_BATCH
        if self.limits.count:
            room = min(room, self.limits.count - self.sent)
        if self.limits.duration:
            room = min(room, self.sim.ticks_until(self.limits.duration))
        return room

    def _grant(self) -> int:
        if self.bucket is None:
            return MAX_BATCH
        dropped = self.bucket.dropped()
        if dropped:
            self.sim.skip(dropped)
            self.skipped += dropped
            self.metrics.ticks_skipped.inc(dropped)
        granted = self.bucket.take(MAX_BATCH)
        if not granted:
            self.stop.wait(self.bucket.wait_time(self._batch_target))
        return granted

    def _send(self, batch: int) -> bool:
        next_event, send, stop = self.sim.next_event, self.sink.send, self.stop
        for _ in range(batch):
            event: Emitted = next_event()
            if not send(event.key, event.value, event.event_type, stop):
                return False
            self.sent += 1
        return True

    def _update_gauges(self, now: float) -> None:
        m, sim = self.metrics, self.sim
        m.queued.set(self.sink.queued())
        m.sessions_active.set(sim.sessions_active)
        m.sessions_started.inc(sim.sessions_started - self._sessions_counted)
        self._sessions_counted = sim.sessions_started
        m.viewer_pace.set(sim.pace)
        if self.bucket is not None:
            m.lag_seconds.set((now - self._started) - sim.elapsed_s)

    def _log_progress(self, now: float) -> None:
        wall = now - self._started
        log.info(
            "progress",
            extra={
                "sent": self.sent,
                "delivered": self.sink.delivered,
                "failed": self.sink.failed,
                "rate": round(self.sent / wall, 1) if wall > 0 else None,
                "sessions_active": self.sim.sessions_active,
                "viewer_pace": round(self.sim.pace, 2),
            },
        )

    def _finish(self) -> Summary:
        self.sink.heartbeat.done()
        generated = time.monotonic()
        unsent = self.sink.flush(self.limits.flush_timeout)
        flushed = time.monotonic()
        self._update_gauges(flushed)
        summary = Summary(
            sent=self.sent,
            delivered=self.sink.delivered,
            failed=self.sink.failed,
            unsent=unsent,
            skipped=self.skipped,
            wall_seconds=round(generated - self._started, 3),
            flush_seconds=round(flushed - generated, 3),
            cpu_seconds=round(time.process_time() - self._cpu_started, 3),
            simulated_seconds=round(self.sim.elapsed_s, 3),
        )
        rate = summary.sent / summary.wall_seconds if summary.wall_seconds > 0 else 0.0
        log.info("finished", extra={**asdict(summary), "rate": round(rate, 1)})
        return summary
