"""Run the benchmark scenarios against one fresh local broker and write the report.

    .venv/bin/python -m bench                        # every scenario, full scale
    .venv/bin/python -m bench --quick                # every scenario, small (CI)
    .venv/bin/python -m bench --scenario mjpeg,socketio [--profile] [--out DIR]

The report goes to bench/results/<date>/ (<date>-quick for --quick, <date>-<scenarios>
for a selection): report.md with its PNG figures, results.json, and every process's log
in logs/. The exit status is 1 if any scenario failed; figures are never asserted.
"""

from __future__ import annotations

import argparse
import signal
import sys
import time
import traceback
from datetime import UTC, datetime
from pathlib import Path

from bench import plots, report
from bench.context import Bench, Section
from bench.machine import CoreSampler, describe, load_average
from bench.processes import ROOT, local_broker, node_version
from bench.scenarios import SCENARIOS


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small scale: minutes, for CI")
    parser.add_argument("--scenario", default="", help=f"comma-separated: {', '.join(SCENARIOS)}")
    parser.add_argument(
        "--profile",
        action="store_true",
        help="attach py-spy to the gateway in its scenarios (costs it CPU)",
    )
    parser.add_argument("--out", type=Path, help="report folder (default: bench/results/...)")
    args = parser.parse_args(argv)
    chosen = [s for s in args.scenario.split(",") if s] or list(SCENARIOS)
    unknown = [s for s in chosen if s not in SCENARIOS]
    if unknown:
        parser.error(f"unknown scenario {', '.join(unknown)}; choose from {', '.join(SCENARIOS)}")
    now = datetime.now(UTC)
    started = now.strftime("%Y-%m-%d %H:%M UTC")
    name = now.strftime("%Y-%m-%d") + ("-quick" if args.quick else "")
    if args.scenario:
        name += "-" + "-".join(chosen)
    out = args.out or ROOT / "bench" / "results" / name
    out.mkdir(parents=True, exist_ok=True)
    node_version()  # fail now, not in the middle of the run, when Node is missing
    # SIGTERM (make interrupted, CI's timeout) unwinds like Ctrl-C: every process stops.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    sections: list[Section] = []
    load_start = load_average()
    print(
        f"bench: {'quick' if args.quick else 'full'} run of {', '.join(chosen)}; report in {out}",
        flush=True,
    )
    t0 = time.monotonic()
    with local_broker() as kafka:
        print(f"broker {kafka.bootstrap} up in {time.monotonic() - t0:.0f} s", flush=True)
        sampler = CoreSampler()
        bench = Bench(quick=args.quick, out=out, kafka=kafka, cores=sampler, profile=args.profile)
        machine = describe(kafka.dist.version)
        for key in chosen:
            title, run = SCENARIOS[key]
            print(f"\n== {key}: {title}", flush=True)
            t0 = time.monotonic()
            start = sampler.now()
            section = Section(key, title, "")
            try:
                section = run(bench)
            except Exception:  # noqa: BLE001 - a failed scenario is reported, the rest still run
                section.error = traceback.format_exc().replace(f"{ROOT}/", "")
                print(section.error, file=sys.stderr, flush=True)
            section.seconds = time.monotonic() - t0
            figure = f"{key}-cpu.png"
            plots.cpu_per_core(
                out / figure, f"{title}: busy % per core", sampler, start, sampler.now()
            )
            if (out / figure).exists():
                section.figures.append(
                    (figure, "Busy % of each core during the scenario; shaded: the measured steps")
                )
            sections.append(section)
            print(
                f"== {key}: {section.seconds:.0f} s{' (FAILED)' if section.error else ''}",
                flush=True,
            )
        sampler.stop()
    path = report.write(
        out,
        machine,
        sections,
        quick=args.quick,
        started=started,
        load=(load_start, load_average()),
        profile=args.profile,
    )
    print()
    report.print_summary(sections)
    print(f"\nreport: {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}")
    return 1 if any(s.error for s in sections) else 0


if __name__ == "__main__":
    sys.exit(main())
