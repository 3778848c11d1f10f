"""The supervisor of `make run`: how a process that ended on its own is reported, what
goes with it, when it is started again, and when `make run` gives up (run.Watch); with
stand-in processes (no broker)."""

from __future__ import annotations

import re
import signal
import sys
import threading
import time
from pathlib import Path

import pytest
from rts_devstack.broker import LocalKafka
from rts_devstack.launch import Launch
from rts_devstack.processes import start_ticks
from rts_devstack.run import Watch
from rts_devstack.stack import StackSettings
from rts_devstack.supervisor import Exit, Output, Restarts, Supervisor, how_it_ended


class Lines(Output):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def line(self, name: str, text: str) -> None:
        self.lines.append(f"{name}: {text.rstrip()}")


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


def watching(tmp_path: Path, restarts: int) -> tuple[Watch, Supervisor, Lines]:
    """`make run`'s watch over a supervisor, with RESTARTS `restarts` and a broker that
    was never started (no broker exits: the broker's own are the integration tests')."""
    said = Lines()
    supervisor = Supervisor(said, cwd=tmp_path)
    settings = StackSettings.load(["--restarts", str(restarts)], environ={})
    kafka = LocalKafka(tmp_path / "kafka")
    stop = threading.Event()
    watch = Watch(settings, kafka, supervisor, None, said, stop, broker_started=time.monotonic())
    return watch, supervisor, said


def reports(said: Lines) -> list[str]:
    """What `make run` said, how long each process ran written `Ns` (it depends on the
    machine's load)."""
    return [
        re.sub(r" after \d+s", " after Ns", line)
        for line in said.lines
        if line.startswith("devstack: ")
    ]


@pytest.mark.timeout(60)
def test_a_process_that_dies_is_reported_in_one_line_and_started_again(tmp_path: Path) -> None:
    watch, supervisor, said = watching(tmp_path, restarts=2)
    first = supervisor.start(stand_in("svc", "print('first run'); raise SystemExit(3)"))
    assert first is not None
    supervisor.remember(stand_in("svc", "import time; print('second run'); time.sleep(600)"))
    result: list[str] = []
    watching_thread = threading.Thread(target=lambda: result.append(watch.until_stopped()))
    watching_thread.start()
    try:
        deadline = time.monotonic() + 30
        while "svc: second run" not in said.lines:
            assert time.monotonic() < deadline, said.lines
            time.sleep(0.05)
    finally:
        watch.stop.set()
        watching_thread.join(10)
    assert result == [""]  # stopped as by Ctrl-C: no failure
    second = supervisor.get("svc")
    assert second is not None
    assert second.proc.pid != first.proc.pid
    assert second.running
    pid = first.proc.pid
    assert reports(said) == [
        f"devstack: svc (pid {pid}) exited with code 3 after Ns; restarting it in 1s "
        "(restart 1 of 2 in a row); its last lines:",
        "devstack:     svc: first run",
    ]
    supervisor.stop_all(timeout=5)


@pytest.mark.timeout(60)
def test_a_process_that_keeps_dying_stops_everything_past_the_limit(tmp_path: Path) -> None:
    watch, supervisor, said = watching(tmp_path, restarts=1)
    first = supervisor.start(stand_in("svc", "raise SystemExit(1)"))
    assert first is not None
    why = watch.until_stopped()
    second = supervisor.get("svc")
    assert second is not None
    assert second.proc.pid != first.proc.pid  # started once again, then given up
    assert re.fullmatch(
        rf"svc \(pid {second.proc.pid}\) exited with code 1 after \d+s, "
        "1 restarts in a row did not keep it up",
        why,
    )
    assert reports(said) == [
        f"devstack: svc (pid {first.proc.pid}) exited with code 1 after Ns; "
        "restarting it in 1s (restart 1 of 1 in a row)",
        f"devstack: svc (pid {second.proc.pid}) exited with code 1 after Ns, "
        "1 restarts in a row did not keep it up: stopping everything",
    ]


@pytest.mark.timeout(60)
def test_with_restarts_0_the_first_death_stops_everything(tmp_path: Path) -> None:
    watch, supervisor, said = watching(tmp_path, restarts=0)
    dying = supervisor.start(stand_in("svc", "print('bye'); raise SystemExit(2)"))
    assert dying is not None
    why = watch.until_stopped()
    assert re.fullmatch(
        rf"svc \(pid {dying.proc.pid}\) exited with code 2 after \d+s, and RESTARTS is 0", why
    )
    assert reports(said) == [
        f"devstack: svc (pid {dying.proc.pid}) exited with code 2 after Ns, and RESTARTS is 0: "
        "stopping everything; its last lines:",
        "devstack:     svc: bye",
    ]
    assert supervisor.get("svc") is dying  # not started again
