"""The build's own wiring: `make test` on a fresh clone fetches or builds every tool it
needs, CI runs exactly that, and the control plane's pins agree with each other."""

from __future__ import annotations

import re
import subprocess

import pytest

from tests.static.chart import ROOT
from tools.test_stages import parse


def dry_run(*targets: str) -> str:
    """What `make` would run for `targets` with nothing built yet (-B: as on a fresh clone)."""
    out = subprocess.run(
        ["make", "--dry-run", "--always-make", *targets],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout


@pytest.mark.parametrize(
    ("target", "needs"),
    [
        ("static", ["tools/fetch_helm.py"]),
        ("cluster-test", ["tools/fetch_helm.py", "go build", "sigs.k8s.io/kwok/cmd/kwok@"]),
        (
            "node-test",
            ["tools/fetch_helm.py", "sigs.k8s.io/kwok/cmd/kwok@", "cmd/kubelet", "pause.c"],
        ),
    ],
)
def test_a_fresh_clone_gets_every_tool_a_stage_needs(target: str, needs: list[str]) -> None:
    # A variable used in a rule's prerequisites before it is defined expands to nothing
    # there, and the tool is silently not built.
    commands = dry_run(target)
    for command in needs:
        assert command in commands, f"make {target} would not run {command}"


STAGES = [
    "unit",
    "integration",
    "cameras",
    "faults",
    "e2e",
    "static",
    "cluster-test",
    "bench-quick",
]


def test_make_test_runs_every_stage_each_a_target_of_its_own() -> None:
    makefile = (ROOT / "Makefile").read_text()
    (plan,) = re.findall(r"^TEST_PLAN \?= (.*)$", makefile, re.M)
    planned = [stage for phase in parse(plan) for lane in phase for stage in lane]
    assert sorted(planned) == sorted(STAGES)
    for stage in STAGES:
        assert re.search(rf"^{re.escape(stage)}:", makefile, re.M), stage
    # What the stages share is made once, before they run side by side.
    (prerequisites,) = re.findall(r"^test: ([^#\n]*)##", makefile, re.M)
    assert prerequisites.split() == ["venv", "kafka-fetch"]


def test_the_stage_runner_reads_phases_lanes_and_stages() -> None:
    assert parse("a,b c | d |  e f,g ") == [[["a", "b"], ["c"]], [["d"]], [["e"], ["f", "g"]]]


def test_ci_runs_make_test_after_the_system_packages_and_nothing_else() -> None:
    script = (ROOT / ".ci" / "run").read_text()
    commands = [
        line.strip()
        for line in script.splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    ran = [c for c in commands if c.startswith(("make", "bash", "sh ", "python"))]
    assert ran == ["bash tools/system-deps.sh", "make test"]


def test_the_control_plane_pins_agree() -> None:
    versions = dict(
        re.findall(r"^(\w+) := (\S+)$", (ROOT / "k8s" / "versions.mk").read_text(), re.M)
    )
    gomod = (ROOT / "k8s" / "controlplane" / "go.mod").read_text()
    kubernetes = versions["KUBERNETES_VERSION"]
    for module, version in (
        ("k8s.io/kubernetes", kubernetes),
        ("go.etcd.io/etcd/server/v3", versions["ETCD_VERSION"]),
    ):
        assert re.search(
            rf"^(require |\t){re.escape(module)} {version}( // indirect)?$", gomod, re.M
        ), module
    # Every staging module at the release that goes with it: v1.35.4 -> v0.35.4.
    staging = re.findall(r"^\t(k8s\.io/\S+) => (\S+) (\S+)$", gomod, re.M)
    assert len(staging) > 20
    for module, target, version in staging:
        assert target == module
        assert version == "v0" + kubernetes[2:], module
    # The same minor version the chart is validated against (tests/static/chart.py).
    from tests.static.chart import KUBERNETES_VERSION

    assert kubernetes.startswith(f"v{KUBERNETES_VERSION}.")


# The formatter lays out the code; `fmt: skip` is kept for the few number tables that
# read better as rows than as one number per line.
FORMAT_SKIPS_ALLOWED = {
    "libs/common/src/rts_common/metrics.py": 2,  # LATENCY_BUCKETS, DURATION_BUCKETS
    "services/gateway/src/rts_gateway/metrics.py": 1,  # STARTUP_BUCKETS
}


def test_the_formatter_is_told_to_look_away_only_for_number_tables() -> None:
    tracked = subprocess.run(
        ["git", "ls-files", "*.py"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    skips = {}
    for name in tracked:
        text = (ROOT / name).read_text()
        count = len(re.findall(r"#\s*fmt:\s*(?:skip|off)\b", text))
        if count:
            skips[name] = count
    assert skips == FORMAT_SKIPS_ALLOWED
