"""Reading a source in its own thread: pacing, reconnecting with backoff, and a watchdog.

The reader thread only reads: it stamps each frame with its capture time and leaves it
in a one-frame mailbox, so the encoder always takes the newest frame and a slow encoder
skips frames instead of sending old ones late. OpenCV's read() can block for good (an
unplugged USB camera, a stream that goes silent without the backend noticing); no
thread can be interrupted in Python, so the watchdog in the capture loop abandons a
reader stuck in a call and starts a fresh one on a new handle.
"""

from __future__ import annotations

import enum
import itertools
import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Generic, TypeVar

from rts_common.logs import Throttle

from rts_capture.metrics import CaptureMetrics
from rts_capture.sources import Image, Source, SourceError

log = logging.getLogger(__name__)

T = TypeVar("T")
Clock = Callable[[], float]


@dataclass(frozen=True, slots=True)
class Captured:
    image: Image
    ts_ns: int  # wall-clock capture time, taken right after read() returned
    seq: int


class Mailbox(Generic[T]):
    """Holds the latest item only: put() replaces what the consumer has not taken yet."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._item: T | None = None
        self._closed = False

    def put(self, item: T) -> T | None:
        """Leave `item`; returns the unconsumed item it replaced, if any."""
        with self._cond:
            replaced, self._item = self._item, item
            self._cond.notify()
            return replaced

    def get(self, timeout: float) -> T | None:
        with self._cond:
            if self._item is None and not self._closed:
                self._cond.wait(timeout)
            item, self._item = self._item, None
            return item

    def close(self) -> None:
        """No more items will come; get() returns what is left, then None at once."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    @property
    def ended(self) -> bool:
        with self._cond:
            return self._closed and self._item is None


class Backoff:
    """Exponential delays between reconnect attempts: first, twice that, and so on up to cap."""

    def __init__(self, first: float = 0.5, cap: float = 30.0) -> None:
        self.first, self.cap = first, cap
        self.attempts = 0

    def next(self) -> float:
        delay = min(self.cap, self.first * float(2 ** min(self.attempts, 32)))
        self.attempts += 1
        return delay

    def reset(self) -> None:
        self.attempts = 0


class Schedule:
    """Slots at a fixed rate on the monotonic clock, for sources that must be paced.

    Slots are computed from the start, so sleeping late on one frame does not push every
    later frame back (no drift); after a long stall the schedule restarts from now
    instead of rushing to catch up.
    """

    def __init__(self, fps: float, clock: Clock = time.monotonic) -> None:
        self.interval = 1.0 / fps
        self._clock = clock
        self._next: float | None = None

    def delay(self) -> float:
        if self._next is None:
            return 0.0
        return max(0.0, self._next - self._clock())

    def advance(self) -> None:
        now = self._clock()
        if self._next is None or now - self._next > max(1.0, 2 * self.interval):
            self._next = now
        self._next += self.interval


class RateCap:
    """Admits frames at most `fps` times a second, from a source that delivers faster."""

    def __init__(self, fps: float, clock: Clock = time.monotonic) -> None:
        self.interval = 1.0 / fps
        # Frames arrive with jitter; one due 2 ms from now is due.
        self._tolerance = min(0.01, self.interval / 4)
        self._clock = clock
        self._next: float | None = None

    def admit(self) -> bool:
        now = self._clock()
        if self._next is not None and now < self._next - self._tolerance:
            return False
        if self._next is None or now - self._next > self.interval:
            self._next = now
        self._next += self.interval
        return True


# A source that keeps failing the same way is logged once a minute, with its count.
REPEAT_LOG_EVERY = 60.0
# Told when the source goes (False, the capture time of its last frame) and comes back
# (True, the capture time of its first frame again), with the frames read so far.
OnChange = Callable[[bool, int, int], None]


class SourceHealth:
    """Whether the source delivers: the `capture_source_up` gauge, readiness, log lines,
    and the source's going and coming back (`on_change`)."""

    def __init__(
        self,
        metrics: CaptureMetrics,
        camera: str,
        source: str,
        on_change: OnChange | None = None,
    ) -> None:
        self._metrics = metrics
        self._lock = threading.Lock()
        self._context = {"camera": camera, "source": source}
        self._on_change = on_change
        self._repeats = Throttle(REPEAT_LOG_EVERY)
        self.up = False
        self.reason = "starting"
        self.failures = 0  # consecutive
        self.frames = 0
        self.last_frame_ns = 0
        self._announced_offline = False  # "online" follows an "offline", never alone
        metrics.source_up.set(0)

    def delivering(self, ts_ns: int = 0) -> None:
        self.frames += 1
        self.last_frame_ns = ts_ns
        if self.up:
            return
        with self._lock:
            was = self.reason
            self.up, self.reason, self.failures = True, "", 0
        self._metrics.source_up.set(1)
        self._repeats = Throttle(REPEAT_LOG_EVERY)
        if was == "starting":
            log.info("source is delivering frames", extra=self._context)
            return
        log.warning("source recovered", extra={**self._context, "after": was})
        if self._on_change is not None and self._announced_offline:
            self._announced_offline = False
            self._on_change(True, ts_ns or time.time_ns(), self.frames)

    def failed(self, reason: str, detail: str, retry_in: float | None = None) -> None:
        with self._lock:
            was_up = self.up
            self.up, self.reason = False, reason
            self.failures += 1
            failures = self.failures
        self._metrics.source_up.set(0)
        self._metrics.source_failure(reason).inc()
        if was_up and self._on_change is not None:
            self._announced_offline = True
            self._on_change(False, self.last_frame_ns or time.time_ns(), self.frames)
        # The first failure of a kind is news; the same again within a minute is not (a
        # camera with a wrong password fails every backoff step, for as long as it runs).
        if not self._repeats.allow((reason, detail)):
            return
        extra = {**self._context, "reason": reason, "detail": detail, "failures": failures}
        if retry_in is not None:
            extra["retry_in_s"] = round(retry_in, 2)
        log.warning("source lost" if was_up or failures == 1 else "source still lost", extra=extra)


class Outcome(enum.Enum):
    ENDED = "ended"  # a file without --loop: no more frames, by design
    LOOP = "loop"  # a file with --loop: open it again now
    FAILED = "failed"  # open it again after a backoff


OpenSource = Callable[[], Source]


@dataclass(frozen=True)
class Opened:
    """A source opened before the reader started (start-up checks), with its first frame."""

    source: Source
    image: Image
    ts_ns: int


class SourceReader:
    """One thread reading one source handle; reopens it on failure, with backoff."""

    def __init__(
        self,
        open_source: OpenSource,
        out: Mailbox[Captured],
        health: SourceHealth,
        metrics: CaptureMetrics,
        seq: Iterator[int],
        *,
        backoff: Backoff,
        fps_cap: float = 0.0,
        loop: bool = False,
        first: Opened | None = None,
        delay: float = 0.0,
        clock: Clock = time.monotonic,
    ) -> None:
        self._open = open_source
        self._out = out
        self._health = health
        self._metrics = metrics
        self._seq = seq
        self._backoff = backoff
        self._fps_cap = fps_cap
        self._loop = loop
        self._first = first
        self._delay = delay
        self._clock = clock
        self._retired = threading.Event()
        self._blocked_since: float | None = None
        self._schedule: Schedule | None = None
        self._thread = threading.Thread(target=self._run, name="source-reader", daemon=True)

    def start(self) -> SourceReader:
        self._thread.start()
        return self

    def retire(self) -> None:
        """Stop reading; a reader stuck in a call exits, releasing its handle, when it returns."""
        self._retired.set()

    def join(self, timeout: float) -> bool:
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def blocked_for(self) -> float:
        """Seconds the reader has been inside one open() or read() call; 0 when it is not."""
        since = self._blocked_since
        return 0.0 if since is None else max(0.0, self._clock() - since)

    def _call(self, fn: Callable[[], T]) -> T:
        self._blocked_since = self._clock()
        try:
            return fn()
        finally:
            self._blocked_since = None

    def _run(self) -> None:
        first, self._first = self._first, None
        source = first.source if first else None
        if self._delay and self._retired.wait(self._delay):
            return
        failed = first is None and self._delay > 0  # started by the watchdog
        while not self._retired.is_set():
            if source is None:
                if failed:
                    self._metrics.source_reopens.inc()
                try:
                    source = self._call(self._open)
                except SourceError as exc:
                    failed = self._wait_after("open_failed", str(exc))
                    continue
                except Exception as exc:  # a backend bug must not kill the reader
                    log.exception("opening the source raised")
                    failed = self._wait_after("open_failed", repr(exc))
                    continue
            try:
                outcome, detail = self._pump(source, first)
            except Exception as exc:  # the same: log it, reopen, go on
                log.exception("reading the source raised")
                outcome, detail = Outcome.FAILED, repr(exc)
            finally:
                first = None
                source.close()
                source = None
            if outcome is Outcome.ENDED:
                self._out.close()
                return
            failed = outcome is Outcome.FAILED
            if failed and detail:
                self._wait_after("read_failed", detail)

    def _wait_after(self, reason: str, detail: str) -> bool:
        delay = self._backoff.next()
        if not self._retired.is_set():
            self._health.failed(reason, detail, retry_in=delay)
        self._retired.wait(delay)
        return True

    def _pump(self, source: Source, first: Opened | None) -> tuple[Outcome, str]:
        """Read until the source ends or fails, or the reader is retired."""
        if source.paced and source.fps:
            # One schedule across --loop reopens keeps the pace steady over the seam.
            if self._schedule is None or self._schedule.interval != 1.0 / source.fps:
                self._schedule = Schedule(source.fps, self._clock)
        else:
            self._schedule = None
        cap_fps = self._fps_cap
        cap = (
            RateCap(cap_fps, self._clock)
            if cap_fps and not (source.paced and source.fps and source.fps <= cap_fps)
            else None
        )
        read = 0
        image: Image | None
        while not self._retired.is_set():
            if first is not None:
                image, ts_ns, first = first.image, first.ts_ns, None
            else:
                if self._schedule is not None and self._retired.wait(self._schedule.delay()):
                    break
                image = self._call(source.read)
                ts_ns = time.time_ns()
            if self._schedule is not None:
                self._schedule.advance()
            if image is None:
                return self._no_frame(source, read)
            read += 1
            self._metrics.source_frames.inc()
            self._health.delivering(ts_ns)
            self._backoff.reset()
            if cap is not None and not cap.admit():
                continue
            if self._retired.is_set():
                break
            if self._out.put(Captured(image, ts_ns, next(self._seq))) is not None:
                self._metrics.dropped("behind").inc()
        return Outcome.FAILED, ""  # retired: nothing to report

    def _no_frame(self, source: Source, read: int) -> tuple[Outcome, str]:
        if source.finite and read > 0:
            if self._loop:
                return Outcome.LOOP, ""
            log.info("source ended", extra={"frames_read": read})
            return Outcome.ENDED, ""
        if source.finite:
            return Outcome.FAILED, "the file opened but no frame could be decoded"
        return Outcome.FAILED, "the source stopped delivering frames"


class Feed:
    """Frames from the current reader, with the watchdog that replaces a stuck one."""

    def __init__(
        self,
        make_reader: Callable[[Opened | None, float], SourceReader],
        out: Mailbox[Captured],
        health: SourceHealth,
        backoff: Backoff,
        *,
        stall_timeout: float,
        open_timeout: float = 0.0,
        first: Opened | None = None,
    ) -> None:
        self._make_reader = make_reader
        self._out = out
        self._health = health
        self._backoff = backoff
        self._stall_timeout = stall_timeout
        # A backend's own timeouts (FFmpeg's open and read timeouts) should end a stuck
        # call before the watchdog gives up on the thread; abandoning it is the last resort.
        self._abandon_after = max(stall_timeout, open_timeout) + max(1.0, stall_timeout)
        self._stall_reported = False
        self.abandoned = 0
        self.reader = make_reader(first, 0.0).start()

    def next(self, timeout: float) -> Captured | None:
        item = self._out.get(timeout)
        self.watch()
        return item

    @property
    def ended(self) -> bool:
        return self._out.ended

    def watch(self) -> None:
        blocked = self.reader.blocked_for()
        if blocked < self._stall_timeout:
            self._stall_reported = False
            return
        if not self._stall_reported:
            self._stall_reported = True
            self._health.failed("stalled", f"no frame for {blocked:.1f}s")
        if blocked >= self._abandon_after:
            delay = self._backoff.next()
            log.warning(
                "abandoning a reader stuck in the source; opening a new handle",
                extra={"blocked_s": round(blocked, 1), "retry_in_s": delay},
            )
            self.abandoned += 1
            self.reader.retire()
            self._stall_reported = False
            self.reader = self._make_reader(None, delay).start()

    def close(self, timeout: float = 2.0) -> None:
        self.reader.retire()
        if not self.reader.join(timeout):
            log.warning("the source reader is still blocked in the source; leaving it behind")


def sequence() -> Iterator[int]:
    """Frame numbers for one process, shared by its successive readers."""
    return itertools.count()
