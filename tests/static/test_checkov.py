"""checkov (security misconfigurations) over what the chart renders, with every value set,
and over the Dockerfiles. A finding is fixed, or skipped where it is made, with its reason:
a `checkov.io/skip<n>: CHECK=reason` annotation in the template, a
`# checkov:skip=CHECK:reason` comment in the Dockerfile."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.static.chart import NAMESPACE, ROOT, VALUE_SETS, prepare_chart, render, values_args

# Nothing leaves the machine: no update check, no policy download from the vendor.
OFFLINE = {"CKV_SKIP_PACKAGE_UPDATE_CHECK": "true", "BC_SKIP_MAPPING": "TRUE"}


def checkov(*args: str) -> list[dict[str, Any]]:
    """The failed checks of a checkov run (`make static` builds its environment)."""
    binary = os.environ.get("CHECKOV") or str(ROOT / ".cache/tools/checkov/bin/checkov")
    if not Path(binary).exists():
        pytest.fail("checkov is not installed: run `make static` (it builds its environment)")
    out = subprocess.run(
        [binary, "--quiet", "--compact", "--skip-download", "--output", "json", *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
        env={**os.environ, **OFFLINE},
    )
    if out.returncode not in (0, 1):
        raise AssertionError(f"checkov failed ({out.returncode}):\n{out.stderr[-3000:]}")
    reports = json.loads(out.stdout) if out.stdout.strip() else []
    reports = reports if isinstance(reports, list) else [reports]
    return [check for report in reports for check in report["results"]["failed_checks"]]


def described(failed: list[dict[str, Any]]) -> str:
    return "\n".join(f"{c['check_id']} {c['resource']}: {c['check_name']}" for c in failed)


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("checkov")
    chart = prepare_chart(folder)
    files = {}
    for value_set in VALUE_SETS:
        objects = render(chart, *values_args(value_set))
        for obj in objects:
            # What `helm install --namespace` does: every object lands in the release's
            # namespace (checkov would otherwise take them for the default one).
            obj["metadata"].setdefault("namespace", NAMESPACE)
        path = folder / f"{value_set}.yaml"
        path.write_text(yaml.safe_dump_all(objects))
        files[value_set] = path
    return files


def test_checkov_finds_nothing_in_the_rendered_chart(rendered: dict[str, Path]) -> None:
    files = [str(path) for path in rendered.values()]
    failed = checkov("--framework", "kubernetes", *[arg for f in files for arg in ("-f", f)])
    assert failed == [], described(failed)


def test_checkov_finds_nothing_in_the_dockerfiles() -> None:
    failed = checkov("--framework", "dockerfile", "-d", str(ROOT / "docker"))
    assert failed == [], described(failed)


def test_checkov_catches_a_privileged_root_pod(tmp_path: Path) -> None:
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "bad", "namespace": "rts"},
        "spec": {
            "containers": [
                {"name": "c", "image": "busybox:1.37.0", "securityContext": {"privileged": True}}
            ]
        },
    }
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(pod))
    found = {check["check_id"] for check in checkov("--framework", "kubernetes", "-f", str(path))}
    assert "CKV_K8S_16" in found  # privileged container
