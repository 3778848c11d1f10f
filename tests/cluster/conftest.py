"""A real Kubernetes control plane for the session: etcd, kube-apiserver, the controller
manager, the scheduler and kwok's fake nodes (rts_cluster.controlplane, the same as
`make cluster-up CLUSTER=kwok` without its real node), on loopback ports in a temporary
folder, with the CRDs of tests/static/crds installed. `make cluster-test` builds the
programs first."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from rts_cluster.controlplane import ControlPlane
from rts_cluster.kube import ClusterError, Kube

from tests.fixtures.cluster import k8s_bin
from tests.static.chart import CRDS, helm, prepare_chart


@pytest.fixture(scope="session")
def control_plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    plane = ControlPlane(tmp_path_factory.mktemp("kwok"), k8s_bin(), helm=helm())
    crds = [CRDS / "strimzi", CRDS / "prometheus-operator", CRDS / "keda"]
    try:
        plane.up(crds)
    except ClusterError as exc:
        pytest.fail(f"the control plane did not start: {exc}", pytrace=False)
    try:
        yield plane
    finally:
        plane.down()


@pytest.fixture(scope="session")
def cluster(control_plane: ControlPlane) -> Kube:
    """kubectl and helm against the session's control plane."""
    return control_plane.kube


@pytest.fixture(scope="session")
def chart(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return prepare_chart(tmp_path_factory.mktemp("chart"))


@pytest.fixture
def namespace(cluster: Kube) -> Iterator[str]:
    """A namespace of its own for each test, deleted afterwards."""
    name = f"t-{uuid.uuid4().hex[:8]}"
    cluster.ok("create", "namespace", name)
    yield name
    cluster.kubectl("delete", "namespace", name, "--wait=false")
