"""Runs the local services as child processes with prefixed, coloured output.

Like honcho, but it stops in order: the supervisor owns the shutdown sequence, so the
services get SIGTERM first and time to flush their producers and commit offsets, and
only then does the caller stop the broker they talk to.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from rts_common.lifecycle import die_with_parent

_COLOURS = itertools.cycle(["36", "33", "35", "32", "34", "96", "93", "95", "92", "94"])


@dataclass(frozen=True)
class Service:
    name: str
    argv: Sequence[str]
    env: Mapping[str, str] = field(default_factory=dict)
    url: str | None = None  # printed in the banner when set
    # Commands run to completion before the service starts (e.g. generating its input);
    # the service is not started when one fails.
    setup: Sequence[Sequence[str]] = ()
    # Where Prometheus scrapes the service, and the kind of service (its `job` label).
    metrics: str | None = None
    job: str = ""
    # Files written (path: content) before the service starts: its generated configuration.
    files: Mapping[Path, str] = field(default_factory=dict)


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

    def pump(self, name: str, pipe: IO[bytes]) -> None:
        for raw in iter(pipe.readline, b""):
            self.line(name, raw.decode("utf-8", "replace"))


class Supervisor:
    def __init__(self, output: Output | None = None, cwd: Path | None = None) -> None:
        self.output = output or Output()
        self.cwd = cwd
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self._reported: set[str] = set()
        # Services are started and stopped from the main loop and from `make scale`'s
        # requests, which another thread serves.
        self._lock = threading.RLock()

    def write_files(self, service: Service) -> None:
        """Write the service's generated files (its configuration)."""
        for path, content in service.files.items():
            target = self.cwd / path if self.cwd else path
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(content)

    def start(self, service: Service) -> bool:
        """Run the service's setup commands, then start it; False if a setup command failed."""
        env = {**os.environ, "PYTHONUNBUFFERED": "1", **service.env}
        self.write_files(service)
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
                return False
        proc = subprocess.Popen(
            list(service.argv),
            env=env,
            cwd=self.cwd,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            preexec_fn=die_with_parent,  # noqa: PLW1509 - only calls prctl
        )
        with self._lock:
            self.procs[service.name] = proc
            self._reported.discard(service.name)
        assert proc.stdout is not None
        threading.Thread(
            target=self.output.pump, args=(service.name, proc.stdout), daemon=True
        ).start()
        return True

    def exited(self) -> dict[str, int]:
        """Processes that ended since the last call, with their exit codes."""
        out = {}
        with self._lock:
            for name, proc in self.procs.items():
                code = proc.poll()
                if code is not None and name not in self._reported:
                    self._reported.add(name)
                    out[name] = code
        return out

    def running(self, name: str) -> bool:
        with self._lock:
            proc = self.procs.get(name)
        return proc is not None and proc.poll() is None

    def signal(self, name: str, signum: int) -> None:
        """Send `signum` to the service's main process (nginx's or Prometheus's reload)."""
        with self._lock:
            proc = self.procs.get(name)
        if proc is not None and proc.poll() is None:
            proc.send_signal(signum)

    def pid(self, name: str) -> int | None:
        with self._lock:
            proc = self.procs.get(name)
        return proc.pid if proc is not None else None

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

    def _terminate(self, procs: dict[str, subprocess.Popen[bytes]], timeout: float) -> None:
        for proc in procs.values():
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for name, proc in procs.items():
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                self.output.line("devstack", f"{name} ignored SIGTERM for {timeout:.0f}s; killing")
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(5)
