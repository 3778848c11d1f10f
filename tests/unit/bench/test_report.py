"""The benchmark report's own logic: profile summaries and the written report."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.context import Section
from bench.profile import summarize
from bench.report import write


def test_profile_summary_counts_self_and_inclusive_shares(tmp_path: Path) -> None:
    raw = tmp_path / "profile.txt"
    raw.write_text(
        "run (gunicorn/arbiter.py);handle (rts_gateway/mjpeg.py);part (rts_gateway/mjpeg.py) 30\n"
        "run (gunicorn/arbiter.py);handle (rts_gateway/mjpeg.py) 10\n"
        "run (gunicorn/arbiter.py);emit (socketio/server.py) 60\n"
    )
    summary = summarize(raw)
    assert summary["samples"] == 100
    assert dict(summary["self"]) == pytest.approx(
        {
            "emit (socketio.server)": 0.6,
            "part (rts_gateway.mjpeg)": 0.3,
            "handle (rts_gateway.mjpeg)": 0.1,
        }
    )
    inclusive = dict(summary["inclusive"])
    assert inclusive["handle (rts_gateway.mjpeg)"] == pytest.approx(0.4)
    assert "run (gunicorn.arbiter)" not in inclusive  # on every stack: says nothing
    assert dict(summary["packages"]) == pytest.approx({"socketio": 0.6, "rts_gateway": 0.4})


def test_the_report_has_the_summary_and_says_which_scenario_failed(tmp_path: Path) -> None:
    ok = Section("mjpeg", "MJPEG fan-out", "What ran.")
    ok.stand("1000 viewers", "97 %", "ceiling", "0.6x", "≥ 95 %", "met")
    ok.table("levels", "viewers", "fps").add(1000, "14.6")
    failed = Section("ingest", "Ingest", "What ran.", error="Traceback ...\nRuntimeError: boom")
    path = write(
        tmp_path,
        {"cores": "2"},
        [ok, failed],
        quick=True,
        started="today",
        load=(0.5, 1.0),
        profile=False,
    )
    text = path.read_text()
    assert "| MJPEG fan-out | 1000 viewers | 97 % | ceiling | 0.6x | ≥ 95 % | met |" in text
    assert "| 1000 | 14.6 |" in text
    assert "**Scenarios that failed:** ingest" in text
    assert "RuntimeError: boom" in text
    results = json.loads((tmp_path / "results.json").read_text())
    assert [s["key"] for s in results["sections"]] == ["mjpeg", "ingest"]
