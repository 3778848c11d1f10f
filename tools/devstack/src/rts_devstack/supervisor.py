"""Runs the local services as child processes with prefixed, coloured output.

Like honcho, but it stops in order: the supervisor owns the shutdown sequence, so the
services get SIGTERM first and time to flush their producers and commit offsets, and
only then does the caller stop the broker they talk to.
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


class Supervisor:
    """The processes of `make run`, by name, their output in the terminal."""

    def __init__(self, output: Output | None = None, cwd: Path | None = None) -> None:
        self.output = output or Output()
        self.cwd = cwd
        self.procs: dict[str, ServiceProcess] = {}
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
            self._reported.discard(service.name)
        return process

    def exited(self) -> dict[str, int]:
        """Processes that ended since the last call, with their exit codes."""
        out = {}
        with self._lock:
            for name, process in self.procs.items():
                code = process.proc.poll()
                if code is not None and name not in self._reported:
                    self._reported.add(name)
                    out[name] = code
        return out

    def get(self, name: str) -> ServiceProcess | None:
        with self._lock:
            return self.procs.get(name)

    def forget(self, name: str) -> None:
        """Stop watching a process (stopped by someone else: its exit is not reported)."""
        with self._lock:
            self.procs.pop(name, None)

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
        self._terminate(procs, timeout)

    def stop_all(self, timeout: float = 20.0) -> None:
        """SIGTERM every process, wait for them to flush and exit, SIGKILL stragglers."""
        with self._lock:
            procs = dict(self.procs)
        self._terminate(procs, timeout)

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
