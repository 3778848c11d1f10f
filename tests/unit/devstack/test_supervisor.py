"""The supervisor of `make run`: how a process that ended on its own is reported, what
goes with it, when it is started again; with stand-in processes (no broker)."""

from __future__ import annotations

import signal
import sys
import time
from pathlib import Path

import pytest
from rts_devstack.launch import Launch
from rts_devstack.processes import start_ticks
from rts_devstack.supervisor import Exit, Output, Restarts, Supervisor, how_it_ended


class Lines(Output):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def line(self, name: str, text: str) -> None:
        self.lines.append(f"{name}: {text}")


def stand_in(name: str, code: str) -> Launch:
    return Launch(name, [sys.executable, "-c", code])


def wait_exits(supervisor: Supervisor, count: int = 1, timeout: float = 30.0) -> list[Exit]:
    ended: list[Exit] = []
    deadline = time.monotonic() + timeout
    while len(ended) < count:
        assert time.monotonic() < deadline, f"{len(ended)} of {count} exits seen"
        ended += supervisor.exited()
        time.sleep(0.02)
    return ended


def test_an_exit_says_which_how_after_how_long_and_its_last_lines(tmp_path: Path) -> None:
    supervisor = Supervisor(Lines(), cwd=tmp_path)
    code = "import sys\nfor i in range(20): print('line', i)\nsys.exit(3)"
    process = supervisor.start(stand_in("crasher", code))
    assert process is not None
    (ended,) = wait_exits(supervisor)
    assert ended.name == "crasher"
    assert ended.pid == process.proc.pid
    assert ended.code == 3
    assert ended.last_lines == [f"line {i}" for i in range(15, 20)]
    assert ended.describe().startswith(
        f"crasher (pid {process.proc.pid}) exited with code 3 after "
    )
    assert supervisor.exited() == []  # reported once


def test_what_a_killed_process_started_goes_with_it(tmp_path: Path) -> None:
    """As gunicorn's worker, which would hold the ports its restart needs."""
    supervisor = Supervisor(Lines(), cwd=tmp_path)
    code = (
        "import subprocess, sys, time\n"
        "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)'])\n"
        "print(child.pid, flush=True)\n"
        "time.sleep(600)"
    )
    process = supervisor.start(stand_in("master", code))
    assert process is not None
    process.wait_for(lambda: bool(process.log().strip()), 30, "its worker's pid")
    worker = int(process.log().strip())
    process.proc.send_signal(signal.SIGKILL)
    (ended,) = wait_exits(supervisor)
    assert ended.describe().startswith(f"master (pid {process.proc.pid}) was killed by SIGKILL")
    assert start_ticks(worker) is None


def test_a_restart_runs_the_remembered_launch_and_the_record_follows(tmp_path: Path) -> None:
    recorded: list[tuple[str, int | None]] = []
    supervisor = Supervisor(Lines(), cwd=tmp_path, record=lambda n, p: recorded.append((n, p)))
    first = supervisor.start(stand_in("svc", "print('first')"))
    assert first is not None
    wait_exits(supervisor)
    supervisor.remember(stand_in("svc", "import time; print('second'); time.sleep(600)"))
    second = supervisor.restart("svc")
    assert second is not None
    second.wait_line("second", 30)
    assert supervisor.running("svc")
    supervisor.stop(["svc"], timeout=5)
    assert recorded == [("svc", first.proc.pid), ("svc", second.proc.pid), ("svc", None)]
    assert supervisor.exited() == []  # a stop asked for is no exit to report


def test_restarts_back_off_while_a_process_keeps_dying_soon_after_starting() -> None:
    restarts = Restarts(limit=4, first=1, longest=5, stable=60)
    assert [restarts.after("x", uptime=2) for _ in range(4)] == [1, 2, 4, 5]
    assert restarts.after("x", uptime=2) is None  # the limit: give up
    assert restarts.after("y", uptime=2) == 1  # each process on its own


def test_a_process_that_stayed_up_starts_over() -> None:
    restarts = Restarts(limit=2, first=1, stable=60)
    assert restarts.after("x", uptime=1) == 1
    assert restarts.after("x", uptime=1) == 2
    assert restarts.after("x", uptime=3600) == 1
    assert restarts.count("x") == 1


def test_with_limit_0_the_first_death_gives_up() -> None:
    assert Restarts(limit=0).after("kafka", uptime=3600) is None


@pytest.mark.parametrize(
    ("code", "said"),
    [
        (-9, "was killed by SIGKILL"),
        (137, "exited with code 137 (SIGKILL)"),
        (143, "exited with code 143 (SIGTERM)"),
        (1, "exited with code 1"),
        (0, "exited with code 0"),
    ],
)
def test_how_it_ended(code: int, said: str) -> None:
    assert how_it_ended(code) == said
