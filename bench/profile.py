"""py-spy attached to a running server during a measured step, and what its samples say:
the functions the process spends its Python CPU time in (self and inclusive), by share of
samples.

The raw profiles stay in the run's folder (profiles/*.txt, one collapsed stack per line:
flamegraph.pl or speedscope.app read them).
"""

from __future__ import annotations

import collections
import math
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.context import Bench

PY_SPY = Path(sys.executable).parent / "py-spy"
# Frames every stack passes through (thread and event loop entry points): left out of the
# inclusive ranking, where they would sit on top and say nothing.
SCAFFOLDING = ("threading", "eventlet.greenthread", "eventlet.hubs", "gunicorn", "runpy")
FRAME = re.compile(r"^(?P<function>.*) \((?P<file>[^()]*)\)$")


@dataclass
class Spy:
    proc: subprocess.Popen[bytes]
    output: Path
    name: str


def start(bench: Bench, pid: int, name: str, seconds: float) -> Spy:
    folder = bench.out / "profiles"
    folder.mkdir(parents=True, exist_ok=True)
    output = folder / f"{name}.txt"
    argv = [
        str(PY_SPY),
        "record",
        "--pid",
        str(pid),
        "--rate",
        "100",
        "--nonblocking",
        # Only samples of Python code holding the GIL: the CPU the process spends in Python,
        # not the threads parked in poll() or the event loop's wait.
        "--gil",
        "--nolineno",
        "--format",
        "raw",
        "--output",
        str(output),
        "--duration",
        str(max(1, math.floor(seconds))),
    ]
    log = (bench.logs / f"py-spy-{name}.log").open("ab")
    return Spy(subprocess.Popen(argv, stdout=log, stderr=log), output, name)


def finish(spy: Spy) -> dict[str, Any]:
    try:
        spy.proc.wait(60)
    except subprocess.TimeoutExpired:
        spy.proc.kill()
        spy.proc.wait(5)
    if not spy.output.exists():
        return {"name": spy.name, "error": f"py-spy wrote nothing (exit {spy.proc.returncode})"}
    return {"name": spy.name, "file": f"profiles/{spy.output.name}", **summarize(spy.output)}


def _frame(raw: str) -> str:
    match = FRAME.match(raw)
    if not match:
        return raw
    module = match["file"].removesuffix(".py").replace("/", ".")
    return f"{match['function']} ({module})"


def summarize(path: Path, top: int = 15) -> dict[str, Any]:
    """Top functions by self and inclusive share of the samples, and the packages whose
    code was running (the leaf frame's)."""
    self_time: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    packages: collections.Counter[str] = collections.Counter()
    total = 0
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [_frame(f) for f in stack.split(";") if f]
        if not frames:
            continue
        total += count
        self_time[frames[-1]] += count
        for frame in set(frames):
            module = frame[frame.rfind("(") + 1 : -1]
            if not module.startswith(SCAFFOLDING):
                inclusive[frame] += count
        leaf = frames[-1]
        package = leaf[leaf.rfind("(") + 1 :].split(".")[0].rstrip(")") if "(" in leaf else "?"
        packages[package] += count

    def share(counter: collections.Counter[str]) -> list[tuple[str, float]]:
        return [(name, n / total) for name, n in counter.most_common(top)] if total else []

    return {
        "samples": total,
        "self": share(self_time),
        "inclusive": share(inclusive),
        "packages": share(packages),
    }
