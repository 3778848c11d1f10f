"""Runs the local services as child processes with prefixed, coloured output.

Like honcho, but it stops in order: the supervisor owns the shutdown sequence, so the
services get SIGTERM first and time to flush their producers and commit offsets, and
only then does the caller stop the broker they talk to. A process that ends on its own
is reported (`Exit`: which, how, its last lines), and `Restarts` says when to start it
again, as a kubelet restarts a pod's container: at once, then after a growing delay while
it keeps dying soon after each start, until the limit.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from rts_devstack.launch import Launch
from rts_devstack.processes import ServiceProcess, write_files

_COLOURS = itertools.cycle(["36", "33", "35", "32", "34", "96", "93", "95", "92", "94"])


class Output:
    """Writes `name | line` for each process, one colour per name, whole lines only."""

    def __init__(self, stream: IO[str] | None = None) -> None:
        self.stream = stream or sys.stdout
        self.colour = self.stream.isatty() and "NO_COLOR" not in os.environ
        self._lock = threading.Lock()
        self._colours: dict[str, str] = {}
        self.width = 10

    def line(self, name: str, text: str) -> None:
        colour = self._colours.setdefault(name, next(_COLOURS))
        prefix = f"{name:<{self.width}} |"
        if self.colour:
            prefix = f"\033[{colour}m{prefix}\033[0m"
        with self._lock:
            self.stream.write(f"{prefix} {text.rstrip()}\n")
            self.stream.flush()


@dataclass(frozen=True)
class Exit:
    """A process that ended without being asked to."""

    name: str
    pid: int
    code: int  # its exit status; below 0: the signal that killed it
    uptime: float  # seconds it ran
    last_lines: list[str]

    def describe(self) -> str:
        """`kafka (pid 41) was killed by SIGKILL after 2m31s`."""
        return (
            f"{self.name} (pid {self.pid}) {how_it_ended(self.code)} after {duration(self.uptime)}"
        )


def how_it_ended(code: int) -> str:
    if code < 0:
        return f"was killed by {signal_name(-code)}"
    if code > 128 and signal_name(code - 128).startswith("SIG"):
        # A JVM or a shell that handles the signal exits with 128 + its number.
        return f"exited with code {code} ({signal_name(code - 128)})"
    return f"exited with code {code}"


def signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def duration(seconds: float) -> str:
    """3h05m, 4m12s, 9s."""
    seconds = max(0, round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    if minutes:
        return f"{minutes}m{secs:02d}s"
    return f"{secs}s"


class Restarts:
    """When to start a process that died again, per name: after `first` seconds, then
    twice as long after each death that comes within `stable` seconds of its start (up to
    `longest`); a process that ran `stable` seconds starts over. `limit` restarts in a row
    without a stable run, then `after` says None: give up. `limit` 0: never restart."""

    def __init__(
        self, limit: int, first: float = 1.0, longest: float = 30.0, stable: float = 60.0
    ) -> None:
        self.limit = limit
        self.first = first
        self.longest = longest
        self.stable = stable
        self._in_a_row: dict[str, int] = {}

    def after(self, name: str, uptime: float) -> float | None:
        """The delay before restarting `name`, which just died after `uptime` seconds; None:
        it should not be restarted."""
        if uptime >= self.stable:
            self._in_a_row[name] = 0
        done = self._in_a_row.get(name, 0)
        if done >= self.limit:
            return None
        self._in_a_row[name] = done + 1
        return float(min(self.first * 2**done, self.longest))

    def count(self, name: str) -> int:
        """Restarts of `name` in a row so far (the one scheduled included)."""
        return self._in_a_row.get(name, 0)


class Supervisor:
    """The processes of `make run`, by name, their output in the terminal."""

    def __init__(
        self,
        output: Output | None = None,
        cwd: Path | None = None,
        *,
        record: Callable[[str, int | None], None] | None = None,
    ) -> None:
        """`record(name, pid)`: told of every process started, and (pid None) of every one
        stopped on purpose (rts_devstack.runlock keeps the list)."""
        self.output = output or Output()
        self.cwd = cwd
        self.procs: dict[str, ServiceProcess] = {}
        self._launches: dict[str, Launch] = {}
        self._record = record or (lambda _name, _pid: None)
        self._reported: set[str] = set()
        # Services are started and stopped from the main loop and from `make scale`'s
        # requests, which another thread serves.
        self._lock = threading.RLock()

    def start(self, service: Launch) -> ServiceProcess | None:
        """Run the service's setup commands, then start it; None if a setup command failed."""
        env = {**os.environ, "PYTHONUNBUFFERED": "1", **service.env}
        write_files(service, self.cwd)
        for command in service.setup:
            done = subprocess.run(
                list(command),
                env=env,
                cwd=self.cwd,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                check=False,
            )
            for line in done.stdout.decode("utf-8", "replace").splitlines():
                self.output.line(service.name, line)
            if done.returncode != 0:
                self.output.line(
                    "devstack", f"{service.name}: setup exited with {done.returncode}; not started"
                )
                return None
        process = ServiceProcess(
            service,
            cwd=self.cwd,
            on_line=functools.partial(self.output.line, service.name),
        )
        with self._lock:
            self.procs[service.name] = process
            self._launches.setdefault(service.name, service)
            self._reported.discard(service.name)
            self._record(service.name, process.proc.pid)
        return process

    def remember(self, service: Launch) -> None:
        """The launch a restart of `service.name` uses from now on (Prometheus's, once
        its targets changed)."""
        with self._lock:
            self._launches[service.name] = service

    def restart(self, name: str) -> ServiceProcess | None:
        """Start `name` again, as last launched (or remembered); None if a setup command
        failed."""
        with self._lock:
            service = self._launches[name]
        return self.start(service)

    def exited(self, last: int = 5) -> list[Exit]:
        """Processes that ended since the last call, with their `last` lines of output."""
        out = []
        with self._lock:
            for name, process in self.procs.items():
                code = process.proc.poll()
                if code is not None and name not in self._reported:
                    self._reported.add(name)
                    # What it started goes with it (gunicorn's worker, holding the ports a
                    # restart needs), as a container's processes go with its main one.
                    with contextlib.suppress(ProcessLookupError, PermissionError):
                        os.killpg(process.proc.pid, signal.SIGKILL)
                    process.wait_exit(5)  # every line it wrote has been read
                    lines = [line.rstrip() for line in process.log(last).splitlines()]
                    uptime = time.monotonic() - process.started
                    out.append(Exit(name, process.proc.pid, code, uptime, lines))
        return out

    def get(self, name: str) -> ServiceProcess | None:
        with self._lock:
            return self.procs.get(name)

    def forget(self, name: str) -> None:
        """Stop watching a process (stopped by someone else: its exit is not reported)."""
        with self._lock:
            self.procs.pop(name, None)
            self._launches.pop(name, None)
            self._record(name, None)

    def running(self, name: str) -> bool:
        process = self.get(name)
        return process is not None and process.running

    def signal(self, name: str, signum: int) -> None:
        """Send `signum` to the service's main process (nginx's or Prometheus's reload)."""
        process = self.get(name)
        if process is not None:
            process.signal(signum)

    def stop(self, names: list[str], timeout: float = 20.0) -> None:
        """SIGTERM these services together, wait for them to exit, SIGKILL stragglers; they
        are forgotten (an exit asked for is not reported)."""
        with self._lock:
            procs = {name: self.procs.pop(name) for name in names if name in self.procs}
            for name in procs:
                self._launches.pop(name, None)
        self._terminate(procs, timeout)
        for name in procs:
            self._record(name, None)

    def stop_all(self, timeout: float = 20.0) -> None:
        """SIGTERM every process, wait for them to flush and exit, SIGKILL stragglers."""
        with self._lock:
            procs = dict(self.procs)
        self._terminate(procs, timeout)
        for name in procs:
            self._record(name, None)

    def _terminate(self, procs: dict[str, ServiceProcess], timeout: float) -> None:
        for process in procs.values():
            if process.running:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for name, process in procs.items():
            try:
                process.proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                self.output.line("devstack", f"{name} ignored SIGTERM for {timeout:.0f}s; killing")
                process.kill()
