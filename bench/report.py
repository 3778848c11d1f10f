"""The run's report: report.md (machine, summary, one section per scenario with its
tables and figures), results.json (every figure measured), and the summary table printed
at the end."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from bench.context import Section, Standing, Table

SUMMARY_COLUMNS = ("scenario", "measure", "value", "reference", "ratio", "target", "stands")


def _row(s: Standing) -> list[str]:
    return [s.scenario, s.measure, s.value, s.reference, s.ratio, s.target, s.verdict]


def markdown_table(table: Table) -> str:
    lines = [
        f"**{table.title}**",
        "",
        "| " + " | ".join(table.columns) + " |",
        "|" + "|".join("---" for _ in table.columns) + "|",
    ]
    lines += ["| " + " | ".join(row) + " |" for row in table.rows]
    return "\n".join(lines)


def write(
    out: Path,
    machine: dict[str, str],
    sections: Sequence[Section],
    *,
    quick: bool,
    started: str,
    load: tuple[float, float],
    profile: bool,
) -> Path:
    kind = (
        "quick run (`QUICK=1`: small scale, figures only show the suite works)"
        if quick
        else "full run"
    )
    parts = [
        f"# Benchmark report, {started}",
        "",
        f"A {kind}{', with py-spy attached to the gateway' if profile else ''}: "
        "every scenario against one fresh local broker, its references measured in the "
        "same run. Latency is receive time minus capture or event time: one machine, "
        "one clock. CPU is in % of one core.",
        "",
        "## Machine",
        "",
        "| | |",
        "|---|---|",
    ]
    parts += [f"| {k} | {v} |" for k, v in machine.items()]
    parts += [f"| load average (1 min) | {load[0]:.2f} at start, {load[1]:.2f} at end |", ""]
    standings = [s for section in sections for s in section.standings]
    parts += [
        "## Summary",
        "",
        markdown_table(
            Table("Where each scenario stands", list(SUMMARY_COLUMNS), [_row(s) for s in standings])
        ),
        "",
    ]
    failed = [s for s in sections if s.error]
    if failed:
        parts += ["**Scenarios that failed:** " + ", ".join(s.key for s in failed), ""]
    for section in sections:
        parts += [
            f"## {section.title}",
            "",
            section.description.strip(),
            "",
            f"_{section.seconds:.0f} s._",
            "",
        ]
        if section.error:
            parts += ["**Failed:**", "", "```", section.error.strip()[-3000:], "```", ""]
        for table in section.tables:
            parts += [markdown_table(table), ""]
        parts += [f"- {note}" for note in section.notes]
        if section.notes:
            parts.append("")
        for found in _profiles(section.data):
            parts += [_profile_markdown(found), ""]
        for name, caption in section.figures:
            parts += [f"![{caption}]({name})", "", f"_{caption}_", ""]
    path = out / "report.md"
    path.write_text("\n".join(parts))
    results: dict[str, Any] = {
        "started": started,
        "quick": quick,
        "machine": machine,
        "sections": [asdict(s) for s in sections],
    }
    (out / "results.json").write_text(json.dumps(results, indent=1, default=str))
    return path


def _profiles(data: Any) -> list[dict[str, Any]]:
    """Every py-spy summary in a section's data."""
    found: list[dict[str, Any]] = []
    if isinstance(data, dict):
        if isinstance(data.get("profile"), dict):
            found.append(data["profile"])
        for value in data.values():
            found += _profiles(value)
    return found


def _profile_markdown(profile: dict[str, Any]) -> str:
    name = profile["name"]
    if "error" in profile:
        return f"**Profile {name}:** {profile['error']}"
    lines = [
        f"**Profile {name}** ({profile['samples']} samples holding the GIL, at 100 a "
        f"second; raw stacks in [{profile['file']}]({profile['file']})): share of samples",
        "",
        "| function (self) | share | function (inclusive) | share | package (self) | share |",
        "|---|---:|---|---:|---|---:|",
    ]
    rows = max(len(profile["self"]), len(profile["inclusive"]))
    for i in range(min(rows, 12)):
        cells = []
        for key in ("self", "inclusive", "packages"):
            entries = profile[key]
            if i < len(entries):
                cells += [f"`{entries[i][0]}`", f"{100 * entries[i][1]:.1f} %"]
            else:
                cells += ["", ""]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def print_summary(sections: Sequence[Section]) -> None:
    rows = [list(SUMMARY_COLUMNS)] + [_row(s) for sec in sections for s in sec.standings]
    widths = [max(len(r[i]) for r in rows) for i in range(len(SUMMARY_COLUMNS))]
    for n, row in enumerate(rows):
        print("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip())
        if n == 0:
            print("  ".join("-" * w for w in widths))
    for section in sections:
        if section.error:
            print(f"FAILED: {section.key}: {section.error.strip().splitlines()[-1]}")
