"""Service processes for tests and benchmarks: started, watched, measured and stopped.

The one way the test suite and the benchmarks run a service: as users and `make run`
do (its launch spec: rts_devstack.launch), in a process group of its own so
that stopping it stops what it started (gunicorn's worker), told by the kernel to exit
if whoever started it dies, its output kept for failure messages and log assertions.
"""

from __future__ import annotations

import collections
import contextlib
import json
import os
import signal
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families
from rts_common.lifecycle import die_with_parent

from rts_devstack import ports
from rts_devstack.launch import Launch
from rts_devstack.ports import Ports

TICKS = os.sysconf("SC_CLK_TCK")


class ServiceProcess:
    """One process started from its launch spec (rts_devstack.launch): `ops` is the base
    URL of its /metrics, /healthz, /readyz, `url` the one users reach (the gateway's),
    `wait_ready()` waits for the spec's readiness URL."""

    def __init__(
        self,
        launch: Launch,
        env: Mapping[str, str] | None = None,
        *,
        log_file: Path | None = None,
        priority: int = 0,
        on_line: Callable[[str], None] | None = None,
        cwd: Path | None = None,
    ) -> None:
        """`env`: more environment (the launch's own wins); `log_file`: also write the
        output there; `priority`: a nice value (below 0 raises it, where allowed);
        `on_line`: called with each line of output as it comes (`make run`'s terminal)."""
        self.launch = launch
        self.on_line = on_line
        self.name = launch.name
        self.ops = launch.ops
        self.url = launch.url or ""
        self.log_file = log_file
        self.argv = list(launch.argv)
        write_files(launch, cwd)
        self.started = time.monotonic()
        # Bounded: a long benchmark run must not keep every line it ever logged.
        self.output: collections.deque[str] = collections.deque(maxlen=50_000)
        self.lines_seen = 0  # every line ever written, including those output let go
        self.proc = subprocess.Popen(
            self.argv,
            env={
                **os.environ,
                "LOG_FORMAT": "console",
                "PYTHONUNBUFFERED": "1",
                **(env or {}),
                **launch.env,
            },
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=cwd,
            text=True,
            errors="replace",
            start_new_session=True,
            preexec_fn=lambda: _prepare_child(priority),  # noqa: PLW1509 - prctl and nice only
        )
        self._reader = threading.Thread(target=self._collect, daemon=True)
        self._reader.start()

    def _collect(self) -> None:
        assert self.proc.stdout is not None
        log = self.log_file.open("a") if self.log_file else None
        try:
            for line in self.proc.stdout:
                self.output.append(line)
                self.lines_seen += 1
                if self.on_line is not None:
                    self.on_line(line)
                if log is not None:
                    log.write(line)
                    log.flush()
        finally:
            if log is not None:
                log.close()

    # -- output

    def log(self, last: int | None = 200) -> str:
        """The output so far: its last lines, or all of it (`last=None`)."""
        lines = list(self.output)
        return "".join(lines if last is None else lines[-last:])

    def lines_after(self, seen: int) -> tuple[list[str], int]:
        """The lines written after the first `seen` ones (those still kept), and the new
        count to pass next time."""
        kept, total = list(self.output), self.lines_seen
        return kept[max(0, len(kept) - (total - seen)) :], total

    def log_records(self) -> list[dict[str, Any]]:
        """The JSON log lines so far (run it with LOG_FORMAT=json)."""
        records = []
        for line in list(self.output):
            if line.startswith("{"):
                with contextlib.suppress(ValueError):
                    records.append(json.loads(line))
        return records

    # -- waiting

    @property
    def running(self) -> bool:
        return self.proc.poll() is None

    def wait_for(self, condition: Callable[[], bool], timeout: float, what: str) -> float:
        """Poll `condition` (connection errors count as "not yet") until true; returns the
        seconds it took. Fails if the process exits or time runs out."""
        started = time.monotonic()
        while time.monotonic() - started < timeout:
            with contextlib.suppress(OSError, ValueError):
                if condition():
                    return time.monotonic() - started
            if not self.running:
                raise AssertionError(
                    f"{self.name} exited ({self.proc.returncode}) waiting for {what}:\n{self.log()}"
                )
            time.sleep(0.1)
        raise AssertionError(f"no {what} within {timeout}s; {self.name} says:\n{self.log()}")

    def wait_http(self, url: str, timeout: float = 30.0, status: int = 200) -> None:
        """Wait until `url` answers `status` (the service is up, or ready for /readyz)."""
        self.wait_for(lambda: http_get(url, timeout=2)[0] == status, timeout, f"{status} at {url}")

    def wait_ready(self, timeout: float = 60.0) -> None:
        """Wait until the launch's readiness URL answers 200."""
        if self.launch.ready is None:
            raise ValueError(f"{self.name} has no readiness URL")
        self.wait_http(self.launch.ready, timeout)

    def wait_line(self, text: str, timeout: float) -> None:
        # A copy: the reader thread appends while this looks (list() takes it in one go).
        self.wait_for(lambda: any(text in line for line in list(self.output)), timeout, repr(text))

    # -- the ops endpoints

    def get(self, path: str) -> tuple[int, str]:
        """Status and body of an ops endpoint; (0, "") while nothing listens."""
        try:
            return http_get(self._ops_url(path), timeout=2)
        except OSError:
            return 0, ""

    def readiness(self) -> dict[str, Any]:
        status, body = self.get("/readyz")
        loaded: dict[str, Any] = json.loads(body) if status else {}
        return loaded

    def ready(self) -> bool:
        return self.get("/readyz")[0] == 200

    def metric(self, name: str, **labels: str) -> float:
        """The sum of the samples of `name` with these labels (0 when absent)."""
        status, text = self.get("/metrics")
        return metric_value(text, name, **labels) if status == 200 else 0.0

    def _ops_url(self, path: str) -> str:
        if self.ops is None:
            raise ValueError(f"{self.name} was started without its ops URL")
        return self.ops.rstrip("/") + path

    # -- stopping

    def signal(self, signum: int) -> None:
        if self.running:
            self.proc.send_signal(signum)

    def wait_exit(self, timeout: float) -> int:
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(
                f"{self.name} still running after {timeout}s:\n{self.log()}"
            ) from None
        self._reader.join(5)  # every line it wrote is in `output`
        return code

    def terminate(self, timeout: float = 20.0) -> int:
        """SIGTERM and wait for the exit; returns the exit code. Fails (after killing it)
        if the process ignores SIGTERM."""
        if self.running:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
                raise AssertionError(
                    f"{self.name} ignored SIGTERM for {timeout}s:\n{self.log()}"
                ) from None
        self._reader.join(5)
        return self.proc.returncode

    def kill(self) -> None:
        """SIGKILL the process and everything it started."""
        if self.running:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(5)

    # -- resources

    def rss_bytes(self) -> int:
        return rss_bytes(self.proc.pid)

    def cpu_seconds(self) -> float:
        return cpu_seconds(self.proc.pid)


class ServiceGroup:
    """Services started together, and the ports reserved for them: every process is killed
    and every port released at the end (`with ServiceGroup() as group`)."""

    def __init__(self, env: Mapping[str, str] | None = None) -> None:
        """`env`: given to every process it starts (a launch's own variables win)."""
        self.env = dict(env or {})
        self.started: list[ServiceProcess] = []
        self._reserved: list[Ports] = []

    def ports(self, count: int = 1, *, contiguous: bool = False) -> Ports:
        """Ports reserved until the group ends (rts_devstack.ports)."""
        reserved = ports.reserve(count, contiguous=contiguous)
        self._reserved.append(reserved)
        return reserved

    def port(self) -> int:
        return self.ports(1)[0]

    def start(self, launch: Launch, **options: Any) -> ServiceProcess:
        """Start `launch` (`options`: ServiceProcess's log_file, priority)."""
        service = ServiceProcess(launch, self.env, **options)
        self.started.append(service)
        return service

    def kill_all(self) -> None:
        for service in self.started:
            service.kill()
        for reserved in self._reserved:
            reserved.release()
        self._reserved.clear()

    def __enter__(self) -> ServiceGroup:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.kill_all()


def write_files(launch: Launch, cwd: Path | None = None) -> None:
    """Write the launch's generated files (its configuration), relative to `cwd`."""
    for path, content in launch.files.items():
        target = cwd / path if cwd else path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(content)


def _prepare_child(priority: int) -> None:
    # Whoever started it may be killed outright: its children must not keep ports.
    die_with_parent()
    if priority:
        with contextlib.suppress(OSError):
            os.nice(priority)


def http_get(url: str, timeout: float = 5.0) -> tuple[int, str]:
    """Status and body of a GET, errors included (connection failures raise OSError)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310
            return response.status, response.read().decode(errors="replace")
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode(errors="replace")


def metric_value(text: str, name: str, **labels: str) -> float:
    """The sum of the samples of `name` whose labels include `labels`, in Prometheus text."""
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items())
    )


def process_tree(pid: int) -> list[int]:
    """`pid` and its descendants (gunicorn's master and worker, for instance)."""
    pids, queue = [], [pid]
    while queue:
        current = queue.pop()
        pids.append(current)
        with contextlib.suppress(OSError):
            for task in Path(f"/proc/{current}/task").iterdir():
                queue += [int(c) for c in (task / "children").read_text().split()]
    return pids


def _stat(pid: int) -> list[str] | None:
    """The fields of /proc/<pid>/stat after the command name (state first), or None."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def start_ticks(pid: int) -> int | None:
    """When the process started, in clock ticks since boot (None: no such process, or a
    zombie): with the pid, what tells a process from a later one given the same pid."""
    fields = _stat(pid)
    if fields is None or fields[0] == "Z":
        return None
    return int(fields[19])


def group_members(pgid: int, since: int = 0) -> list[int]:
    """The running processes of process group `pgid` started at `since` (ticks) or later."""
    try:
        entries = [int(e.name) for e in Path("/proc").iterdir() if e.name.isdigit()]
    except OSError:
        return []  # no /proc: not Linux
    members = []
    for pid in entries:
        fields = _stat(pid)
        if fields and fields[0] != "Z" and int(fields[2]) == pgid and int(fields[19]) >= since:
            members.append(pid)
    return members


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process tree so far."""
    total = 0.0
    for p in process_tree(pid):
        fields = _stat(p)
        if fields is not None:
            total += (int(fields[11]) + int(fields[12])) / TICKS
    return total


def rss_bytes(pid: int) -> int:
    """Resident memory of a process tree."""
    total = 0
    for p in process_tree(pid):
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
    return total
