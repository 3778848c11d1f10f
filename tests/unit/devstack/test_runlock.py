"""One `make run` per data folder: the lock a live run holds, and the leftovers of a run
that was killed, with stand-in processes (no broker)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from rts_devstack.processes import start_ticks
from rts_devstack.runlock import (
    Process,
    Record,
    RunHeld,
    RunLock,
    boot_id,
    held,
    live_record,
    stop_leftovers,
)

# A `make run` in miniature: takes the lock, starts a child in a session of its own (as
# the supervisor starts every service), records it, and runs until killed.
HOLDER = """
import subprocess, sys, time
from pathlib import Path
from rts_devstack.runlock import RunLock
lock = RunLock(Path(sys.argv[1]))
lock.acquire(dashboard="http://127.0.0.1:8000/", kafka="127.0.0.1:9092")
child = subprocess.Popen(sys.argv[2:], start_new_session=True)
lock.record("stand-in", child.pid)
print(child.pid, flush=True)
time.sleep(600)
"""

SLEEPER = [sys.executable, "-c", "import time; time.sleep(600)"]


@pytest.fixture
def started() -> Iterator[list[int]]:
    """Pids to kill at the end, whatever the test did."""
    pids: list[int] = []
    yield pids
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGKILL)


def start_holder(data: Path, started: list[int], *child: str) -> tuple[subprocess.Popen[str], int]:
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(data), *(child or SLEEPER)],
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    started.append(holder.pid)
    assert holder.stdout is not None
    child_pid = int(holder.stdout.readline())  # once the lock is taken and the child recorded
    started.append(child_pid)
    return holder, child_pid


def test_a_second_run_is_refused_with_who_holds_the_folder(
    tmp_path: Path, started: list[int]
) -> None:
    holder, _child = start_holder(tmp_path, started)
    assert held(tmp_path)
    with pytest.raises(RunHeld) as refused:
        RunLock(tmp_path).acquire(dashboard=None, kafka=None)
    said = "\n".join(refused.value.describe())
    assert f"pid {holder.pid}, running since " in said
    assert "its dashboard: http://127.0.0.1:8000/" in said
    assert f"kill {holder.pid}" in said
    record = live_record(tmp_path)
    assert record is not None
    assert record.holder.pid == holder.pid


def test_a_killed_runs_lock_is_free_and_its_leftovers_are_stopped(
    tmp_path: Path, started: list[int]
) -> None:
    holder, child = start_holder(tmp_path, started)
    holder.kill()
    holder.wait(10)
    assert not held(tmp_path)
    assert live_record(tmp_path) is None
    lock = RunLock(tmp_path)
    previous = lock.acquire(dashboard=None, kafka=None)
    assert previous is not None
    assert previous.holder.pid == holder.pid
    leftovers = previous.leftovers()
    assert list(leftovers) == ["stand-in"]
    assert leftovers["stand-in"].pid == child
    said: list[str] = []
    stop_leftovers(leftovers, said.append, timeout=10)
    assert start_ticks(child) is None
    assert said == []  # it went on SIGTERM
    lock.release()
    assert not (tmp_path / "devstack.json").exists()
    assert not held(tmp_path)


def test_orphans_of_a_killed_group_leader_are_leftovers_too(
    tmp_path: Path, started: list[int]
) -> None:
    """A leader killed outright leaves its group's other processes (nginx's workers)."""
    shell = ["sh", "-c", f"{sys.executable} -c 'import time; time.sleep(600)' & exec sleep 600"]
    holder, leader = start_holder(tmp_path, started, *shell)
    holder.kill()
    holder.wait(10)
    leader_process = Process.of(leader)
    os.kill(leader, signal.SIGKILL)
    previous = RunLock(tmp_path).acquire(dashboard=None, kafka=None)
    assert previous is not None
    wait_until(lambda: start_ticks(leader) is None)
    (orphan,) = leader_process.members()
    assert previous.leftovers() == {"stand-in": leader_process}
    stop_leftovers(previous.leftovers(), lambda _line: None, timeout=10)
    assert start_ticks(orphan) is None


def test_a_reused_pid_or_another_boot_is_no_leftover(tmp_path: Path, started: list[int]) -> None:
    child = subprocess.Popen(SLEEPER, start_new_session=True)
    started.append(child.pid)
    running = Process.of(child.pid)
    assert running.start_ticks is not None
    reused = Process(child.pid, running.start_ticks - 1)  # the same pid, started before
    holder = Process.of(os.getpid())

    def leftovers(boot: str, process: Process) -> dict[str, Process]:
        return Record(holder, 0.0, boot, str(tmp_path), children={"it": process}).leftovers()

    assert leftovers(boot_id(), running) == {"it": running}
    assert leftovers(boot_id(), reused) == {}
    assert leftovers("another-boot", running) == {}


def wait_until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline
        time.sleep(0.02)
