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


def test_a_task_being_started_is_not_reported_exited(monkeypatch: pytest.MonkeyPatch) -> None:
    """Under eventlet, starting a thread yields to other green threads: a health check that
    runs meanwhile must not see a task that is not running yet as one that died."""
    task = PeriodicTask("starting", 1.0, lambda: None)
    seen: list[str | None] = []
    start = threading.Thread.start

    def start_seen_by_a_health_check(thread: threading.Thread) -> None:
        seen.append(task.problem(time.monotonic()))
        start(thread)

    monkeypatch.setattr(threading.Thread, "start", start_seen_by_a_health_check)
    task.start()
    task.stop()
    assert seen == [None]
