"""Periodic background work with a clean stop: heartbeats, housekeeping, metric updates.

A task runs on a thread of its own and waits on an event between runs, so `stop()`
returns as soon as the current run ends instead of after a whole interval. Under
eventlet's monkey patching (the gateway) that thread and that event are green, so the
same class serves the gateway's app context and the other services' native threads.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from rts_common.logs import Throttle

log = logging.getLogger(__name__)


class PeriodicTask:
    """Calls `action` every `interval` seconds (the first time after `first_delay`).

    A failing run is logged (once a minute per task) and the task goes on; `runs` and
    `last_run` (monotonic) say whether it is alive, for health checks.
    """

    def __init__(
        self,
        name: str,
        interval: float,
        action: Callable[[], None],
        *,
        first_delay: float | None = None,
        overdue_after: float | None = None,
    ) -> None:
        """`overdue_after`: how late a run may be before `problem()` says so (by default
        three intervals, and never less than 30 s more than one)."""
        if interval < 0:
            raise ValueError("interval must not be negative")
        self.name = name
        self.interval = interval
        self.runs = 0
        self.failures = 0
        self.last_run: float | None = None
        self._action = action
        self._first_delay = interval if first_delay is None else first_delay
        self._overdue_after = (
            max(3 * interval, interval + 30.0) if overdue_after is None else overdue_after
        )
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        # Set by the task's own thread as it ends. Not `Thread.is_alive()`: that is False
        # until the new thread has begun to run, so a probe answered while `start()` waits
        # for it (under eventlet, every other green thread runs then) saw "exited".
        self._exited = False
        self._first_due = 0.0
        self._errors = Throttle(60.0)

    def start(self) -> PeriodicTask:
        self._first_due = time.monotonic() + self._first_delay
        self._exited = False
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 2.0) -> None:
        """Stop after the current run (waits for it up to `timeout`)."""
        self._stop.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    @property
    def stopped(self) -> bool:
        return self._stop.is_set()

    def problem(self, now: float) -> str | None:
        """Why the task is not running as it should (None while it is, or before it started
        and after it was stopped): its thread ended, or a run is long overdue."""
        if self._thread is None or self.stopped:
            return None
        if self._exited:
            return "exited"
        due = (self.last_run or self._first_due) + self._overdue_after
        if now > due:
            return f"no run for {now - (self.last_run or self._first_due):.0f}s"
        return None

    def run_once(self) -> None:
        try:
            self._action()
        except Exception:
            self.failures += 1
            if self._errors.allow(None):
                log.exception("periodic task failed", extra={"task": self.name})
        finally:
            self.runs += 1
            self.last_run = time.monotonic()

    def _run(self) -> None:
        try:
            wait = self._first_delay
            while not self._stop.wait(wait):
                self.run_once()
                wait = self.interval
        finally:
            self._exited = True


class Heartbeat:
    """Liveness of a loop that is not a PeriodicTask: it calls `beat()` every round, and
    one silent for longer than `max_silence` seconds is stuck."""

    def __init__(self, name: str, max_silence: float) -> None:
        self.name = name
        self.max_silence = max_silence
        self._last: float | None = None
        self._done = False

    def beat(self) -> None:
        self._last = time.monotonic()

    def done(self) -> None:
        """The loop ended on purpose: nothing to report any more."""
        self._done = True

    def problem(self, now: float) -> str | None:
        if self._last is None or self._done or now - self._last <= self.max_silence:
            return None
        return f"no round for {now - self._last:.0f}s"
