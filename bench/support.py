"""What the benchmarks share: a throw-away broker, process CPU and memory, percentiles."""

from __future__ import annotations

import contextlib
import os
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

from rts_common.contracts import TOPICS
from rts_common.net import free_ports
from rts_devstack.broker import LocalKafka

TICKS = os.sysconf("SC_CLK_TCK")


@contextlib.contextmanager
def local_broker(heap: str = "1g") -> Iterator[LocalKafka]:
    """A single-node broker on free ports with a scratch data folder, stopped afterwards."""
    with tempfile.TemporaryDirectory(prefix="rts-bench-") as tmp:
        ports = free_ports(2)
        kafka = LocalKafka(Path(tmp), ports=ports[:1], controller_ports=ports[1:], heap=heap)
        with kafka:
            yield kafka


def fresh_topics(kafka: LocalKafka) -> str:
    """The platform's topics under a new prefix; returns the prefix."""
    prefix = f"bench{uuid.uuid4().hex[:8]}."
    kafka.create_topics(TOPICS, prefix=prefix)
    return prefix


def process_tree(pid: int) -> list[int]:
    """`pid` and its descendants (gunicorn's master and worker, for instance)."""
    pids, queue = [], [pid]
    while queue:
        current = queue.pop()
        pids.append(current)
        with contextlib.suppress(OSError):
            for task in Path(f"/proc/{current}/task").iterdir():
                children = (task / "children").read_text().split()
                queue += [int(c) for c in children]
    return pids


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process tree so far."""
    total = 0.0
    for p in process_tree(pid):
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / TICKS
    return total


def rss_bytes(pid: int) -> int:
    total = 0
    for p in process_tree(pid):
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
    return total


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile; NaN when there are no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, int(len(ordered) * q + 0.999999) - 1))]
