"""What is measured about processes and the machine: CPU and memory of a process tree,
busy time per core over the run, and a description of the machine for the report."""

from __future__ import annotations

import contextlib
import os
import platform
import re
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from rts_devstack.processes import cpu_seconds


class CpuMeter:
    """CPU of a process tree between start() and stop(), in % of one core."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self._cpu = cpu_seconds(pid)
        self._at = time.monotonic()

    def percent(self) -> float:
        return 100 * (cpu_seconds(self.pid) - self._cpu) / max(1e-6, time.monotonic() - self._at)


def _core_times() -> list[tuple[int, int]]:
    """(busy, total) jiffies of each core, from /proc/stat."""
    cores = []
    for line in Path("/proc/stat").read_text().splitlines():
        if re.match(r"cpu\d+ ", line):
            values = [int(v) for v in line.split()[1:]]
            idle = values[3] + values[4]  # idle + iowait
            cores.append((sum(values) - idle, sum(values)))
    return cores


@dataclass
class Span:
    label: str
    start: float
    end: float


@dataclass
class CoreSampler:
    """Busy % of every core, sampled in the background for the whole run, with the
    spans in which each measurement ran (for the CPU-per-core plots)."""

    interval: float = 0.5
    t0: float = field(default_factory=time.monotonic)
    samples: list[tuple[float, list[float]]] = field(default_factory=list)
    spans: list[Span] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="core-sampler", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        previous = _core_times()
        while not self._stop.wait(self.interval):
            current = _core_times()
            busy = [
                100 * (b1 - b0) / max(1, t1 - t0)
                for (b0, t0), (b1, t1) in zip(previous, current, strict=True)
            ]
            self.samples.append((time.monotonic() - self.t0, busy))
            previous = current

    def now(self) -> float:
        return time.monotonic() - self.t0

    def span(self, label: str, start: float) -> Span:
        """Record that `label` was measured from `start` (a `now()`) until now."""
        span = Span(label, start, self.now())
        self.spans.append(span)
        return span

    def busy(self, start: float, end: float) -> list[float]:
        """Mean busy % of each core between two `now()` times."""
        inside = [b for t, b in self.samples if start < t <= end + self.interval]
        if not inside:
            return []
        return [sum(core) / len(inside) for core in zip(*inside, strict=True)]

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(2)


def _version(argv: list[str], pattern: str = r"(\d+\.\d+[\w.+-]*)") -> str:
    if not shutil.which(argv[0]):
        return "missing"
    out = subprocess.run(argv, capture_output=True, text=True, check=False)
    match = re.search(pattern, out.stdout + out.stderr)
    return match.group(1) if match else "unknown"


def describe(kafka_version: str) -> dict[str, str]:
    """The machine and the versions a run's figures depend on."""
    model = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    memory = "unknown"
    with contextlib.suppress(OSError):
        kib = int(Path("/proc/meminfo").read_text().split()[1])
        memory = f"{kib / 2**20:.1f} GiB"
    from importlib.metadata import version

    packages = (
        "confluent-kafka",
        "flask",
        "flask-socketio",
        "python-socketio",
        "eventlet",
        "gunicorn",
        "opencv-python-headless",
    )
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False
    ).stdout.strip()
    dirty = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=no"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    info = {
        "cpu": model,
        "cores": str(os.cpu_count()),
        "memory": memory,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "java": _version(["java", "-version"], r'version "([^"]+)"'),
        "node": _version(["node", "--version"]),
        "kafka": kafka_version,
        "librdkafka": _librdkafka(),
        "git commit": commit + (" (with local changes)" if dirty else ""),
        "command": " ".join([Path(sys.executable).name, "-m", "bench", *sys.argv[1:]]),
    }
    for name in packages:
        with contextlib.suppress(Exception):
            info[name] = version(name)
    return info


def _librdkafka() -> str:
    import confluent_kafka

    return str(confluent_kafka.libversion()[0])


def load_average() -> float:
    return os.getloadavg()[0]
