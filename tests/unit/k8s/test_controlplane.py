"""The kwok control plane's own logic, without starting it (tests/cluster starts it)."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest
from rts_cluster import __main__ as cli
from rts_cluster.controlplane import ControlPlane, State
from rts_cluster.kube import ClusterError
from rts_cluster.ports import free_ports


def test_up_without_the_built_programs_says_how_to_build_them(tmp_path: Path) -> None:
    plane = ControlPlane(tmp_path / "state", tmp_path / "bin")
    with pytest.raises(ClusterError, match=r"make controlplane"):
        plane.up()
    assert not (tmp_path / "state" / "state.json").exists()


def test_down_stops_what_up_recorded_and_forgets_it(tmp_path: Path) -> None:
    sleeper = subprocess.Popen(["sleep", "60"])
    port = free_ports(1)[0]
    state = State(str(tmp_path), port, port, port, port, pids={"etcd": sleeper.pid})
    state.save()
    plane = ControlPlane(tmp_path, tmp_path)
    started = time.monotonic()
    assert plane.down() == ["etcd"]
    assert time.monotonic() - started < 10
    sleeper.wait(5)
    assert not (tmp_path / "state.json").exists()
    assert ControlPlane(tmp_path, tmp_path).down() == []


def test_a_second_up_is_refused_while_the_first_runs(tmp_path: Path) -> None:
    sleeper = subprocess.Popen(["sleep", "60"])
    try:
        State(str(tmp_path), 1, 2, 3, 4, pids={"etcd": sleeper.pid}).save()
        with pytest.raises(ClusterError, match="already running"):
            ControlPlane(tmp_path, tmp_path).up()
    finally:
        sleeper.kill()
        sleeper.wait()


def test_status_of_a_cluster_that_is_not_running(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["status", "--dir", str(tmp_path)]) == 1
    assert "not running" in capsys.readouterr().out
