"""The cluster's long-running programs: started in their own session with a log file,
found again by process id from another command (`down` after `up`), stopped in order."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Mapping
from pathlib import Path


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie (our own child that exited) is not running.
    with contextlib.suppress(OSError):
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[0] != "Z"
    return True


class Daemons:
    """Programs started by this process or an earlier one, by name, with their logs."""

    def __init__(self, logs: Path) -> None:
        self.logs = logs
        self._children: list[subprocess.Popen[bytes]] = []

    def start(
        self,
        name: str,
        argv: list[str],
        *,
        cwd: Path,
        env: Mapping[str, str] | None = None,
    ) -> int:
        self.logs.mkdir(parents=True, exist_ok=True)
        with (self.logs / f"{name}.log").open("ab") as log:
            process = subprocess.Popen(
                argv,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=cwd,
                env=None if env is None else dict(env),
                # Its own session: Ctrl-C in the terminal that ran `make cluster-up` must
                # not reach it; `down` stops it.
                start_new_session=True,
            )
        self._children.append(process)
        return process.pid

    def stop(self, pid: int, timeout: float = 20.0) -> bool:
        """SIGTERM, then SIGKILL after `timeout`; False when it was not running."""
        if not alive(pid):
            return False
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while alive(pid) and time.monotonic() < deadline:
            self.reap()
            time.sleep(0.1)
        if alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            while alive(pid):
                self.reap()
                time.sleep(0.1)
        self.reap()
        return True

    def reap(self) -> None:
        for child in self._children:
            child.poll()

    def log_tail(self, name: str, lines: int = 30) -> str:
        path = self.logs / f"{name}.log"
        if not path.exists():
            return "(no log)"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
