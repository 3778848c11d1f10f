"""rts-dashboards: write the Grafana dashboards' JSON, check it, or verify it on a Prometheus.

rts-dashboards                 # (re)write helm/streaming/files/dashboards/*.json
rts-dashboards check           # exit 1 naming the files that differ from the code
rts-dashboards verify --prometheus http://127.0.0.1:9090
                               # run every panel's queries; exit 1 on empty or
                               # out-of-range answers
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from rts_observability import verify as checks
from rts_observability.dashboards import DASHBOARDS
from rts_observability.dashboards.panels import render
from rts_observability.prometheus import LOCAL_NAMESPACE

DEFAULT_OUT = Path("helm") / "streaming" / "files" / "dashboards"


def rendered() -> dict[str, str]:
    """Each dashboard file's name and its exact content."""
    return {
        name: json.dumps(render(build()), indent=2, ensure_ascii=False) + "\n"
        for name, build in DASHBOARDS.items()
    }


def stale(out: Path) -> list[str]:
    """Files under `out` that differ from what the code renders (or are missing)."""
    files = rendered()
    wrong = [n for n, text in files.items() if _read(out / n) != text]
    extra = [p.name for p in out.glob("*.json") if p.name not in files]
    return sorted(wrong + extra)


def _read(path: Path) -> str | None:
    return path.read_text() if path.is_file() else None


def write(out: Path) -> int:
    out.mkdir(parents=True, exist_ok=True)
    for name, text in rendered().items():
        (out / name).write_text(text)
        print(f"wrote {out / name}")
    for name in stale(out):  # only files no dashboard renders any more
        (out / name).unlink()
        print(f"removed {out / name}")
    return 0


def check(out: Path) -> int:
    differ = stale(out)
    for name in differ:
        print(f"{out / name}: out of date; run `make dashboards`", file=sys.stderr)
    return 1 if differ else 0


def verify(out: Path, url: str, namespace: str, scrape_interval: float, window: float) -> int:
    dashboards: list[dict[str, Any]] = [json.loads((out / n).read_text()) for n in DASHBOARDS]
    results = checks.verify(
        dashboards,
        checks.Prometheus(url),
        scrape_interval=scrape_interval,
        window=window,
        prefer={"namespace": namespace},
    )
    for r in results:
        sample = "-" if r.sample is None else f"{r.sample:.4g}"
        verdict = "ok" if r.ok else "; ".join(r.problems)
        print(
            f"{r.query.dashboard} | {r.query.panel} | {r.query.ref_id} | "
            f"{r.series} series | {sample} {r.query.unit} | {verdict}"
        )
    failed = [r for r in results if not r.ok]
    print(f"{len(results) - len(failed)} passed, {len(failed)} failed")
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="rts-dashboards", description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("command", nargs="?", choices=["write", "check", "verify"], default="write")
    parser.add_argument(
        "--out",
        type=Path,
        default=DEFAULT_OUT,
        help=f"folder of the dashboards' JSON (default {DEFAULT_OUT})",
    )
    parser.add_argument(
        "--prometheus", default="http://127.0.0.1:9090", help="verify: the Prometheus to query"
    )
    parser.add_argument(
        "--namespace",
        default=LOCAL_NAMESPACE,
        help="verify: the namespace to select (`local` for make run)",
    )
    parser.add_argument(
        "--scrape-interval",
        type=float,
        default=5.0,
        help="verify: Prometheus's scrape interval, seconds",
    )
    parser.add_argument(
        "--window",
        type=float,
        default=60.0,
        help="verify: seconds of history every value must pass",
    )
    args = parser.parse_args(argv)
    if args.command == "check":
        return check(args.out)
    if args.command == "verify":
        return verify(args.out, args.prometheus, args.namespace, args.scrape_interval, args.window)
    return write(args.out)


if __name__ == "__main__":
    sys.exit(main())
