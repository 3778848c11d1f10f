"""The chart's pods for real: the control plane with kwok's fake nodes and a real node
(kubelet and containerd, rts_cluster.node), the project's three images built with podman
and loaded into it, the local broker on 127.0.0.1 (with the brokers' metrics exporter),
and the chart installed with k8s/node.yaml, the values a user installs it with there.

Every port a pod binds is the machine's (host network): they are chosen below the
kernel's ephemeral range and passed as values, as a user would set them.
"""

from __future__ import annotations

import hashlib
import json
import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from rts_cluster import images
from rts_cluster.controlplane import ControlPlane
from rts_cluster.kube import ClusterError, Kube
from rts_cluster.node import RealNode
from rts_cluster.ports import free_ports
from rts_common.contracts import TOPICS
from rts_devstack.broker import LocalKafka

from tests.fixtures.cluster import k8s_bin
from tests.static.chart import CRDS, ROOT, helm

# Of this checkout: two checkouts testing at once on one machine share podman's images.
TAG = "node-test-" + hashlib.sha256(str(ROOT).encode()).hexdigest()[:8]
RELEASE = "streaming"
NODE_VALUES = ROOT / "k8s" / "node.yaml"
# The monitors' interval (monitoring.interval), which the stage's Prometheus follows: the
# brokers' exporter answers in 2 s on a busy machine, and a scrape may not outlast it.
SCRAPE_SECONDS = 5.0
# The chart's two cameras, lighter (5 fps, one face detector): the stage shares two cores
# with the rest of `make test`, and proves the wiring, not the throughput (bench/ does).
CAMERAS = [
    {"id": "lobby", "source": "test", "fps": 5, "width": 640, "height": 480, "faces": True},
    {"id": "parking", "source": "test", "fps": 5, "width": 640, "height": 360, "faces": False},
]


@pytest.fixture(scope="session")
def built_images() -> list[images.Built]:
    missing = images.missing_tools()
    if missing:
        pytest.fail(
            f"{', '.join(missing)} missing: apt-get install podman runc mmdebstrap",
            pytrace=False,
        )
    built = images.build(ROOT, [TAG], ROOT / ".cache" / "images")
    for image in built:
        print(f"\n{image.line()}")
    return built


@pytest.fixture(scope="session")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RealNode]:
    """The control plane and its real node, stopped at the end; nothing may be left."""
    plane = ControlPlane(
        tmp_path_factory.mktemp("cluster"), k8s_bin("kubelet", "pause"), helm=helm()
    )
    real = RealNode(plane)
    missing = real.missing()
    if missing:
        pytest.fail("the real node needs: " + "; ".join(missing), pytrace=False)
    started = time.monotonic()
    try:
        plane.up([CRDS / "strimzi", CRDS / "prometheus-operator", CRDS / "keda"])
        real.up()
    except ClusterError as exc:
        plane.down()
        pytest.fail(f"the cluster did not start: {exc}", pytrace=False)
    print(f"\ncontrol plane and real node up in {time.monotonic() - started:.0f} s")
    try:
        yield real
    finally:
        try:
            stopped = real.down()
            print(f"\nreal node down: {', '.join(stopped)}")
        finally:
            plane.down()
        assert real.leftovers() == []


@pytest.fixture(scope="session")
def loaded(node: RealNode, built_images: list[images.Built]) -> list[str]:
    names = [name for image in built_images for name in image.names]
    started = time.monotonic()
    archive = images.save(names, node.dir / "images.tar")
    try:
        node.load_images(archive)
    finally:
        archive.unlink()
    print(f"\nimages saved and loaded into the node in {time.monotonic() - started:.0f} s")
    return names


@dataclass
class Broker:
    kafka: LocalKafka
    prefix: str
    metrics: str  # host:port of the brokers' exporter

    @property
    def bootstrap(self) -> str:
        return self.kafka.bootstrap


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    """The local broker, outside the cluster, on 127.0.0.1: the pods reach it through the
    host network. The topics exist before the chart installs (kafka.mode external)."""
    client, controller, metrics = free_ports(3)
    kafka = LocalKafka(
        Path(tmp_path_factory.mktemp("kafka")),
        ports=[client],
        controller_ports=[controller],
        metrics_ports=[metrics],
    )
    # Its start is not what this stage tests; on a machine busy with the other stages
    # it takes longer than the 90 s a broker of the integration tests gets.
    kafka.start(timeout=300)
    try:
        prefix = f"n{uuid.uuid4().hex[:8]}."
        kafka.create_topics(TOPICS, prefix=prefix)
        yield Broker(kafka, prefix, f"127.0.0.1:{metrics}")
    finally:
        kafka.stop()


@dataclass
class Ports:
    gateway: int
    gateway_ops: int
    capture_ops: int  # the first camera's; the second has the next one
    eventsim_ops: int
    probe_ops: int

    @classmethod
    def choose(cls) -> Ports:
        gateway, gateway_ops, eventsim_ops, probe_ops = free_ports(4)
        capture_ops, _second_camera = free_ports(2, contiguous=True)
        return cls(gateway, gateway_ops, capture_ops, eventsim_ops, probe_ops)


@dataclass
class Release:
    kube: Kube  # in the release's namespace
    name: str
    namespace: str
    ports: Ports
    broker: Broker
    node: RealNode
    values: list[str] = field(default_factory=list)

    @property
    def gateway_url(self) -> str:
        return f"http://127.0.0.1:{self.ports.gateway}"

    def helm(self, *args: str, timeout: float = 600) -> str:
        return self.kube.helm(*args, timeout=timeout).check()

    def upgrade(self, *more: str, timeout: str = "8m") -> str:
        chart = str(ROOT / "helm" / "streaming")
        return self.helm(
            *("upgrade", "--install", self.name, chart, *self.values, *more),
            *("--wait", "--timeout", timeout),
            timeout=900,
        )

    def pods(self, component: str | None = None) -> list[dict[str, Any]]:
        selector = f"app.kubernetes.io/instance={self.name}"
        if component:
            selector += f",app.kubernetes.io/component={component}"
        items = self.kube.json("get", "pods", "-l", selector)["items"]
        return [p for p in items if not p["metadata"].get("deletionTimestamp")]

    def metric(self, port: int, name: str) -> float:
        """The sum of a metric's samples on one pod's ops port (via the host network)."""
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as page:
            text = page.read().decode()
        total = 0.0
        for line in text.splitlines():
            if line.startswith((name + "{", name + " ")):
                total += float(line.rsplit(" ", 1)[1])
        return total


def ready(pod: dict[str, Any]) -> bool:
    conditions = {c["type"]: c["status"] for c in pod["status"].get("conditions") or []}
    return conditions.get("Ready") == "True"


@pytest.fixture(scope="session")
def release(node: RealNode, loaded: list[str], broker: Broker) -> Release:
    """The chart installed as a user installs it on the real node (k8s/node.yaml), with
    this session's ports, broker and images; `helm install --wait` returns when the
    kubelet's probes find every pod ready."""
    ports = Ports.choose()
    namespace = f"n-{uuid.uuid4().hex[:6]}"
    kube = node.plane.kube.in_namespace(namespace)
    values = [
        *("--values", str(NODE_VALUES)),
        *("--set", f"image.tag={TAG}"),
        *("--set", f"kafka.external.bootstrap={broker.bootstrap}"),
        *("--set", f"kafka.topicPrefix={broker.prefix}"),
        *("--set", f"gateway.port={ports.gateway}"),
        *("--set", f"gateway.opsPort={ports.gateway_ops}"),
        *("--set", f"gateway.url=http://127.0.0.1:{ports.gateway}"),
        *("--set", f"capture.opsPort={ports.capture_ops}"),
        *("--set", f"eventSim.opsPort={ports.eventsim_ops}"),
        *("--set", f"probe.opsPort={ports.probe_ops}"),
        *("--set", f"monitoring.interval={SCRAPE_SECONDS:g}s"),
        *("--set-json", f"capture.cameras={json.dumps(CAMERAS)}"),
    ]
    release = Release(kube, RELEASE, namespace, ports, broker, node, values)
    started = time.monotonic()
    try:
        release.upgrade("--create-namespace")
    except ClusterError as exc:
        described = kube.kubectl("describe", "pods").output[-6000:]
        pytest.fail(f"helm install on the real node failed: {exc}\n{described}", pytrace=False)
    print(f"\nhelm install --wait on the real node: {time.monotonic() - started:.0f} s")
    return release
