"""The alert rules: valid for Prometheus, and each proven by promtool's unit tests."""

import subprocess
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[3]
RULES = sorted((ROOT / "helm" / "streaming" / "files" / "alerts").glob("*.yaml"))
TESTS = sorted((ROOT / "observability" / "alerts-tests").glob("*.yaml"))


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["promtool", *args], capture_output=True, text=True, check=False)


def load(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(path.read_text())
    return data


def test_alert_rules_pass_promtool_check() -> None:
    assert RULES
    done = promtool("check", "rules", *map(str, RULES))
    assert done.returncode == 0, done.stdout + done.stderr


def test_alert_rules_pass_their_promtool_unit_tests() -> None:
    assert TESTS
    done = promtool("test", "rules", *map(str, TESTS))
    assert done.returncode == 0, done.stdout + done.stderr


def test_promtool_unit_tests_fail_when_an_alert_does_not_behave(tmp_path: Path) -> None:
    test = load(TESTS[0])
    test["rule_files"] = [str((TESTS[0].parent / f).resolve()) for f in test["rule_files"]]
    for case in test["tests"]:
        for check in case.get("alert_rule_test", []):
            check["exp_alerts"] = [] if check["exp_alerts"] else [{"exp_labels": {}}]
    broken = tmp_path / "broken.test.yaml"
    broken.write_text(yaml.safe_dump(test))
    assert promtool("test", "rules", str(broken)).returncode != 0


def test_every_alert_is_tested_firing_and_every_rule_file_is_tested() -> None:
    alerts = {r["alert"] for p in RULES for g in load(p)["groups"] for r in g["rules"]}
    tested_files: set[Path] = set()
    firing: set[str] = set()
    for path in TESTS:
        test = load(path)
        tested_files |= {(path.parent / f).resolve() for f in test["rule_files"]}
        for case in test["tests"]:
            for check in case.get("alert_rule_test", []):
                if check["exp_alerts"]:
                    firing.add(check["alertname"])
    assert alerts - firing == set()
    assert {p.resolve() for p in RULES} <= tested_files


def test_alerts_have_a_severity_summary_and_description() -> None:
    for path in RULES:
        for group in load(path)["groups"]:
            for rule in group["rules"]:
                assert rule["labels"]["severity"] in {"warning", "critical"}, rule["alert"]
                assert rule["annotations"]["summary"], rule["alert"]
                assert rule["annotations"]["description"], rule["alert"]
