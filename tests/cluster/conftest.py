"""A real Kubernetes control plane for the session: etcd, kube-apiserver, the controller
manager, the scheduler and kwok's fake nodes (tools/kwok_cluster.py, the same as
`make cluster-up CLUSTER=kwok`), on loopback ports in a temporary folder, with the CRDs
of tests/static/crds installed. `make cluster-test` builds the programs first."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

from tests.static.chart import CRDS, ROOT, helm, prepare_chart


def load_tool() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "kwok_cluster", ROOT / "tools" / "kwok_cluster.py"
    )
    assert spec
    assert spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["kwok_cluster"] = module
    spec.loader.exec_module(module)
    return module


def k8s_bin() -> Path:
    explicit = os.environ.get("K8S_BIN")
    if explicit:
        return Path(explicit)
    built = sorted(ROOT.glob(".cache/k8s/*/.built"))
    if not built:
        pytest.fail("the control plane is not built: run `make controlplane`", pytrace=False)
    return built[-1].parent


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


class Cluster:
    """kubectl and helm against the session's control plane."""

    def __init__(self, plane: Any, bin_dir: Path) -> None:
        self.plane = plane
        self.kubeconfig = str(plane.kubeconfig)
        self.bin = bin_dir
        self.env = {
            **os.environ,
            "KUBECONFIG": self.kubeconfig,
            "HELM_CACHE_HOME": str(plane.dir / "helm-cache"),
            "HELM_CONFIG_HOME": str(plane.dir / "helm-config"),
            "HELM_DATA_HOME": str(plane.dir / "helm-data"),
        }

    def run(self, argv: list[str], stdin: str | None = None, timeout: float = 180) -> Result:
        out = subprocess.run(
            argv,
            input=stdin,
            capture_output=True,
            text=True,
            env=self.env,
            timeout=timeout,
            check=False,
        )
        return Result(out.returncode, out.stdout, out.stderr)

    def kubectl(self, *args: str, stdin: str | None = None) -> Result:
        return self.run([str(self.bin / "kubectl"), *args], stdin)

    def helm(self, *args: str) -> Result:
        return self.run([helm(), *args])

    def ok(self, result: Result) -> str:
        assert result.returncode == 0, result.output
        return result.stdout

    def json(self, *args: str) -> Any:
        return yaml.safe_load(self.ok(self.kubectl(*args, "-o", "json")))


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    tool = load_tool()
    bin_dir = k8s_bin()
    plane = tool.ControlPlane(tmp_path_factory.mktemp("kwok"), bin_dir)
    crds = [CRDS / "strimzi", CRDS / "prometheus-operator", CRDS / "keda"]
    try:
        plane.up(crds)
    except tool.ClusterError as exc:
        pytest.fail(f"the control plane did not start: {exc}", pytrace=False)
    try:
        yield Cluster(plane, bin_dir)
    finally:
        plane.down()


@pytest.fixture(scope="session")
def chart(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return prepare_chart(tmp_path_factory.mktemp("chart"))


@pytest.fixture
def namespace(cluster: Cluster) -> Iterator[str]:
    """A namespace of its own for each test, deleted afterwards."""
    name = f"t-{uuid.uuid4().hex[:8]}"
    cluster.ok(cluster.kubectl("create", "namespace", name))
    yield name
    cluster.kubectl("delete", "namespace", name, "--wait=false")
