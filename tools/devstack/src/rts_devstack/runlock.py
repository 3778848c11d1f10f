"""One `make run` per data folder (per checkout, with the default `.data`), and what a run
that died left running.

`make run` holds an exclusive `flock` on `devstack.lock` in its data folder for as long as
it runs. The kernel releases the lock when the process ends, however it ends (Ctrl-C, a
crash, kill -9, a reboot), so a held lock is a live run and a free one is not: a pid file
alone cannot tell (after a reboot, or once its pid is reused, it names another process).
Whoever holds the lock keeps a record beside it, `devstack.json` (replaced whole, never
half-written): its pid, since when, its dashboard and broker, and the processes it
started.

- A second `make run` (and `make scale`, `make login-url`, `make kafka-stop`) that finds
  the lock held reads the record to say which process holds it and how to reach it, and
  changes nothing.
- A `make run` that takes the lock and finds a record was preceded by a run that ended
  without stopping its processes (its supervisor killed). The processes that record names
  and that still run are its leftovers: the same process only if it started at the
  recorded moment of this boot (pids are reused). They are stopped before anything starts.

The lock file itself is never replaced: a lock lives on the file's inode, and a new file
under the same name would be a second, free lock.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from rts_devstack.locks import try_lock
from rts_devstack.processes import group_members, start_ticks
from rts_devstack.supervisor import duration

LOCK_FILE = "devstack.lock"
RECORD_FILE = "devstack.json"
# How long a reader waits for the holder's record: a run writes it right after taking
# the lock, so a reader that comes between the two sees its predecessor's for a moment.
RECORD_WAIT = 5.0


def boot_id() -> str:
    """This boot's identity (Linux); empty elsewhere, where no process is recognised."""
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


@dataclass(frozen=True)
class Process:
    """A process by pid and start time: the same process only if both match (this boot)."""

    pid: int
    start_ticks: int | None

    @classmethod
    def of(cls, pid: int) -> Process:
        return cls(pid, start_ticks(pid))

    def alive(self) -> bool:
        return self.start_ticks is not None and start_ticks(self.pid) == self.start_ticks

    def members(self) -> list[int]:
        """The processes of its group still running (each child of a run leads a group
        of its own: gunicorn's worker, nginx's workers are in it). While the leader runs,
        the group is its; once the leader is gone, members started after it are taken for
        its orphans (its number can name a new group only once all of them are gone)."""
        if self.start_ticks is None:
            return []
        leader = start_ticks(self.pid)
        if leader is not None and leader != self.start_ticks:
            return []  # the pid was reused: the group is someone else's
        return group_members(self.pid, since=self.start_ticks)

    def to_json(self) -> dict[str, int | None]:
        return {"pid": self.pid, "start_ticks": self.start_ticks}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Process:
        return cls(int(data["pid"]), data.get("start_ticks"))


@dataclass(frozen=True)
class Record:
    """What a run says about itself in `devstack.json`."""

    holder: Process
    started: float  # epoch seconds
    boot: str
    data_dir: str
    dashboard: str | None = None
    kafka: str | None = None
    children: dict[str, Process] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            **self.holder.to_json(),
            "started": self.started,
            "boot": self.boot,
            "data_dir": self.data_dir,
            "dashboard": self.dashboard,
            "kafka": self.kafka,
            "children": {name: p.to_json() for name, p in self.children.items()},
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Record:
        return cls(
            Process.from_json(data),
            float(data["started"]),
            str(data.get("boot", "")),
            str(data.get("data_dir", "")),
            data.get("dashboard"),
            data.get("kafka"),
            {name: Process.from_json(p) for name, p in data.get("children", {}).items()},
        )

    @property
    def since(self) -> str:
        """When it started, and how long ago."""
        at = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(self.started))
        return f"{at} ({duration(time.time() - self.started)} ago)"

    def describe(self) -> list[str]:
        """Which process holds the data folder and how to reach it: what a refusal says."""
        lines = [
            f"another `make run` uses {self.data_dir}: pid {self.holder.pid}, "
            f"running since {self.since}"
        ]
        if self.dashboard:
            lines.append(
                f"its dashboard: {self.dashboard} (`make login-url` prints a sign-in link)"
            )
        if self.kafka:
            lines.append(f"its Kafka: {self.kafka}")
        lines.append(
            f"stop it with Ctrl-C in its terminal (or `kill {self.holder.pid}`), or give this "
            "one its own data folder and ports (RTS_DATA_DIR, KAFKA_PORT, GATEWAY_PORT...)"
        )
        return lines

    def leftovers(self) -> dict[str, Process]:
        """Its children that still run (none after a reboot)."""
        if not self.boot or self.boot != boot_id():
            return {}
        return {name: p for name, p in self.children.items() if p.members()}


class RunHeld(Exception):
    """A live run holds the data folder."""

    def __init__(self, record: Record | None, data_dir: Path) -> None:
        self.record = record
        self.data_dir = data_dir
        super().__init__("\n".join(self.describe()))

    def describe(self) -> list[str]:
        if self.record is None:
            lock = self.data_dir / LOCK_FILE
            return [
                f"another `make run` holds {lock}, without its record ({RECORD_FILE}): "
                f"`fuser -v {lock}` names it"
            ]
        return self.record.describe()


class RunLock:
    """The data folder's lock, held by the running `make run`, and its record."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.lock_path = data_dir / LOCK_FILE
        self.record_path = data_dir / RECORD_FILE
        self._fd: int | None = None
        self._record: Record | None = None

    def acquire(self, *, dashboard: str | None, kafka: str | None) -> Record | None:
        """Take the lock, or raise RunHeld (naming the holder) and change nothing. Returns
        the record a previous holder left (it ended without stopping), or None."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        fd = try_lock(self.lock_path)
        if fd is None:
            raise RunHeld(live_record(self.data_dir), self.data_dir)
        self._fd = fd
        previous = read_record(self.record_path)
        self._record = Record(
            Process.of(os.getpid()),
            time.time(),
            boot_id(),
            str(self.data_dir),
            dashboard,
            kafka,
        )
        self._write()
        return previous

    def record(self, name: str, pid: int | None) -> None:
        """Note a child started (its pid), or stopped on purpose (None)."""
        if self._record is None:
            return
        children = dict(self._record.children)
        if pid is None:
            children.pop(name, None)
        else:
            children[name] = Process.of(pid)
        self._record = replace(self._record, children=children)
        self._write()

    def release(self) -> None:
        """Once everything it started has stopped: nothing is left to clean."""
        if self._fd is None:
            return
        self.record_path.unlink(missing_ok=True)
        os.close(self._fd)
        self._fd = None
        self._record = None

    def _write(self) -> None:
        assert self._record is not None
        staging = self.record_path.with_suffix(f".{os.getpid()}.tmp")
        staging.write_text(json.dumps(self._record.to_json(), indent=1))
        staging.replace(self.record_path)


def live_record(data_dir: Path) -> Record | None:
    """The record of the run holding `data_dir`'s lock, None if no run holds it or (for a
    moment at its start) its record is not written yet."""
    deadline = time.monotonic() + RECORD_WAIT
    while True:
        if not held(data_dir):
            return None
        record = read_record(data_dir / RECORD_FILE)
        if record is not None and record.holder.alive():
            return record
        if time.monotonic() > deadline:
            return None
        time.sleep(0.1)


def held(data_dir: Path) -> bool:
    """A live run holds `data_dir` (its lock is taken)."""
    path = data_dir / LOCK_FILE
    if not path.exists():
        return False
    fd = try_lock(path)
    if fd is None:
        return True
    os.close(fd)
    return False


def read_record(path: Path) -> Record | None:
    try:
        return Record.from_json(json.loads(path.read_text()))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def stop_leftovers(
    leftovers: Mapping[str, Process], say: Callable[[str], None], timeout: float = 20.0
) -> None:
    """Stop what a dead run left running: SIGCONT (a frozen process cannot act on
    anything else) and SIGTERM to every process of each group, then SIGKILL to those
    still there after `timeout`."""
    for process in leftovers.values():
        for pid in process.members():
            _signal(pid, signal.SIGCONT)
            _signal(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while any(p.members() for p in leftovers.values()) and time.monotonic() < deadline:
        time.sleep(0.1)
    for name, process in leftovers.items():
        stragglers = process.members()
        if stragglers:
            say(f"{name} ignored SIGTERM for {timeout:.0f}s; killing it")
        for pid in stragglers:
            _signal(pid, signal.SIGKILL)


def _signal(pid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, signum)


def describe_leftovers(record: Record, pids: Mapping[str, int]) -> str:
    """What a run says before it stops what `record`'s run left running (name: pid)."""
    names = ", ".join(f"{name} (pid {pid})" for name, pid in pids.items())
    return (
        f"the run before (pid {record.holder.pid}, since {record.since}) ended without "
        f"stopping its processes; stopping what it left running: {names}"
    )
