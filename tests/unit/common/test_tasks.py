import threading
import time

import pytest
from rts_common.tasks import PeriodicTask


def test_a_task_runs_periodically_survives_failures_and_stops_at_once() -> None:
    runs: list[float] = []

    def action() -> None:
        runs.append(time.monotonic())
        if len(runs) == 2:
            raise RuntimeError("one bad run")

    task = PeriodicTask("t", 0.02, action, first_delay=0).start()
    deadline = time.monotonic() + 5
    while len(runs) < 5 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert len(runs) >= 5
    assert task.failures == 1
    assert task.problem(time.monotonic()) is None
    task.interval = 60.0  # a long wait: stop() must not sit through it
    started = time.monotonic()
    task.stop()
    assert time.monotonic() - started < 1.0
    assert task.problem(time.monotonic()) is None  # stopped on purpose


def test_a_task_stuck_in_its_action_is_reported_overdue() -> None:
    release = threading.Event()
    task = PeriodicTask(
        "stuck", 0.01, lambda: release.wait(10), first_delay=0, overdue_after=0.2
    ).start()
    time.sleep(0.5)
    problem = task.problem(time.monotonic())
    assert problem is not None
    assert problem.startswith("no run for")
    release.set()
    time.sleep(0.1)
    assert task.problem(time.monotonic()) is None
    task.stop()


def test_a_task_is_not_reported_exited_while_its_thread_starts(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A health probe answered while `start()` waits for the new thread to run (under
    eventlet every other green thread runs then: the gateway's ops server answers first)
    must not take a thread that has not begun for one that ended."""
    task = PeriodicTask("starting", 60.0, lambda: None)
    seen: list[str | None] = []
    start = threading.Thread.start

    def probed_start(thread: threading.Thread) -> None:
        seen.append(task.problem(time.monotonic()))
        start(thread)
        seen.append(task.problem(time.monotonic()))

    monkeypatch.setattr(threading.Thread, "start", probed_start)
    task.start()
    assert seen == [None, None]
    task.stop()


class _Ended(BaseException):
    """What `run_once` does not catch (GreenletExit, an eventlet Timeout are of its kind)."""


def test_a_task_whose_thread_ends_is_reported_exited() -> None:
    def action() -> None:
        raise _Ended

    task = PeriodicTask("ends", 0.01, action, first_delay=0)
    hook, threading.excepthook = threading.excepthook, lambda args: None
    try:
        task.start()
        deadline = time.monotonic() + 5
        while task.problem(time.monotonic()) is None and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        threading.excepthook = hook
    assert task.problem(time.monotonic()) == "exited"
