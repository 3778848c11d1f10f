"""The kwok control plane's own logic, without starting it (tests/cluster starts it)."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import time
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[3]


def load() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "kwok_cluster", ROOT / "tools" / "kwok_cluster.py"
    )
    assert spec
    assert spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["kwok_cluster"] = module
    spec.loader.exec_module(module)
    return module


kwok = load()


def test_up_without_the_built_programs_says_how_to_build_them(tmp_path: Path) -> None:
    plane = kwok.ControlPlane(tmp_path / "state", tmp_path / "bin")
    with pytest.raises(kwok.ClusterError, match=r"make controlplane"):
        plane.up()
    assert not (tmp_path / "state" / "state.json").exists()


def test_down_stops_what_up_recorded_and_forgets_it(tmp_path: Path) -> None:
    sleeper = subprocess.Popen(["sleep", "60"])
    port = kwok.free_ports(1)[0]
    state = kwok.State(str(tmp_path), port, port, port, port, pids={"etcd": sleeper.pid})
    state.save()
    plane = kwok.ControlPlane(tmp_path, tmp_path)
    plane._children.append(sleeper)
    started = time.monotonic()
    assert plane.down() == ["etcd"]
    assert time.monotonic() - started < 10
    assert sleeper.poll() is not None
    assert not (tmp_path / "state.json").exists()
    assert kwok.ControlPlane(tmp_path, tmp_path).down() == []


def test_a_second_up_is_refused_while_the_first_runs(tmp_path: Path) -> None:
    sleeper = subprocess.Popen(["sleep", "60"])
    try:
        kwok.State(str(tmp_path), 1, 2, 3, 4, pids={"etcd": sleeper.pid}).save()
        with pytest.raises(kwok.ClusterError, match="already running"):
            kwok.ControlPlane(tmp_path, tmp_path).up()
    finally:
        sleeper.kill()
        sleeper.wait()


def test_status_of_a_cluster_that_is_not_running(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert kwok.main(["status", "--dir", str(tmp_path)]) == 1
    assert "not running" in capsys.readouterr().out
