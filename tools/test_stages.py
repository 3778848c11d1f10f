"""`make test`: every test stage, side by side where they mostly wait, and what each took.

    python tools/test_stages.py "unit,static,cluster-test integration faults | e2e | bench-quick"

The plan is phases separated by `|`, run one after another; a phase is lanes separated by
spaces, run side by side; a lane is stages (make targets) separated by commas, run one
after another. Most of what the slow stages do is wait (for brokers, rebalances, timeouts
a fault must outlast), so lanes share the cores well; a stage that needs the machine to
itself (the benchmarks' figures) gets a phase of its own. A new stage joins the plan in
the Makefile's TEST_PLAN: as a lane of a phase, or a phase.

Each stage's output goes to artifacts/stages/<stage>.log; a failed stage's last lines are
printed. At the end: each stage's wall time and CPU time (its processes' user + system),
the load average, and the tests counted by pytest, in a closing line.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LOGS = ROOT / "artifacts" / "stages"
TAIL = 150
COUNTS = re.compile(r"(\d+) (passed|failed|errors?|skipped)")


@dataclass
class Stage:
    name: str
    lane: int
    phase: int
    wall: float = 0.0
    cpu: float = 0.0
    code: int | None = None
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def log(self) -> Path:
        return LOGS / f"{self.name}.log"


def parse(plan: str) -> list[list[list[str]]]:
    """Phases of lanes of stages."""
    phases = [
        [[s for s in lane.split(",") if s] for lane in phase.split()] for phase in plan.split("|")
    ]
    return [[lane for lane in phase if lane] for phase in phases if any(phase)]


def run_stage(stage: Stage, make: str, lock: threading.Lock) -> None:
    started = time.monotonic()
    with lock:
        print(f"[{_clock()}] {stage.name}: started", flush=True)
    with stage.log.open("w") as log:
        proc = subprocess.Popen(
            [make, "--no-print-directory", stage.name],
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        # wait4: the stage's own CPU, with every process it waited for.
        _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    stage.code = proc.returncode
    stage.wall = time.monotonic() - started
    stage.cpu = usage.ru_utime + usage.ru_stime
    stage.counts = _counts(stage.log)
    with lock:
        verdict = "passed" if stage.code == 0 else f"FAILED (exit {stage.code})"
        print(f"[{_clock()}] {stage.name}: {verdict} in {_duration(stage.wall)}", flush=True)
        if stage.code != 0:
            lines = stage.log.read_text(errors="replace").splitlines()
            print(f"--- the last {TAIL} lines of {stage.log.relative_to(ROOT)}:")
            print("\n".join(lines[-TAIL:]), flush=True)


def run_lane(stages: list[Stage], make: str, lock: threading.Lock) -> None:
    for stage in stages:
        run_stage(stage, make, lock)


def _counts(log: Path) -> dict[str, int]:
    """pytest's closing counts in a stage's log (every pytest run of it, added up)."""
    counts: dict[str, int] = {}
    for line in log.read_text(errors="replace").splitlines():
        if line.startswith("=") and (" in " in line) and COUNTS.search(line):
            for number, kind in COUNTS.findall(line):
                key = "errors" if kind.startswith("error") else kind
                counts[key] = counts.get(key, 0) + int(number)
    return counts


def _clock() -> str:
    return time.strftime("%H:%M:%S")


def _duration(seconds: float) -> str:
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes} min {rest:02d} s" if minutes else f"{rest} s"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("plan", help='phases "|", lanes " ", stages ","')
    parser.add_argument("--make", default=os.environ.get("MAKE", "make"))
    args = parser.parse_args(argv)
    LOGS.mkdir(parents=True, exist_ok=True)
    phases = parse(args.plan)
    lock = threading.Lock()
    stages: list[Stage] = []
    load_before = os.getloadavg()
    started = time.monotonic()
    for p, phase in enumerate(phases, start=1):
        lanes = [[Stage(name, lane=i, phase=p) for name in lane] for i, lane in enumerate(phase, 1)]
        stages += [s for lane in lanes for s in lane]
        threads = [
            threading.Thread(target=run_lane, args=(lane, args.make, lock)) for lane in lanes
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    total = time.monotonic() - started
    load_after = os.getloadavg()

    print(f"\nmake test: {_duration(total)} on {os.cpu_count()} cores")
    print(f"{'stage':<14} {'phase/lane':>10} {'wall':>12} {'CPU':>12}  result")
    for s in stages:
        result = "passed" if s.code == 0 else f"FAILED ({s.code})"
        tests = ", ".join(f"{n} {k}" for k, n in s.counts.items())
        print(
            f"{s.name:<14} {f'{s.phase}/{s.lane}':>10} {_duration(s.wall):>12} "
            f"{_duration(s.cpu):>12}  {result}{f' ({tests})' if tests else ''}"
        )
    cpu = sum(s.cpu for s in stages)
    print(
        f"CPU {_duration(cpu)} in {_duration(total)}: {cpu / total:.2f} cores busy on average; "
        f"load average {load_before[0]:.1f} at the start, {load_after[0]:.1f} at the end"
    )
    passed = sum(s.counts.get("passed", 0) for s in stages)
    failed = sum(s.counts.get("failed", 0) + s.counts.get("errors", 0) for s in stages)
    failed_stages = [s.name for s in stages if s.code != 0]
    # A stage that failed before or outside pytest (a lint, a build) counts as one.
    failed += sum(1 for s in stages if s.code != 0 and not s.counts.get("failed", 0))
    if failed_stages:
        print(f"failed stages: {', '.join(failed_stages)}")
    print(f"{passed} passed, {failed} failed", flush=True)
    return 1 if failed_stages else 0


if __name__ == "__main__":
    sys.exit(main())
