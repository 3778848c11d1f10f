"""The chart with the real node's values (k8s/node.yaml): every pod on the host network,
on the real node, with the images as `make images` loads them, and no two pods binding
one port of the node; what a host network changes in updates; a collision refused at
render time, naming the values."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.static.chart import (
    ROOT,
    Obj,
    RenderError,
    env_of,
    named,
    of_kind,
    pod_specs,
    prepare_chart,
    render,
    validate,
)

NODE_VALUES = ["--values", str(ROOT / "k8s" / "node.yaml")]
TOLERATE_REAL_NODE = {
    "key": "rts/real-node",
    "operator": "Equal",
    "value": "true",
    "effect": "NoSchedule",
}


@pytest.fixture(scope="module")
def chart(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return prepare_chart(tmp_path_factory.mktemp("chart"))


@pytest.fixture(scope="module")
def objects(chart: Path) -> list[Obj]:
    return render(chart, *NODE_VALUES)


def test_the_node_values_render_valid_objects(objects: list[Obj]) -> None:
    assert [str(p) for obj in objects for p in validate(obj)] == []


def test_every_pod_is_on_the_real_node_and_its_network(objects: list[Obj]) -> None:
    pods = list(pod_specs(objects))
    assert len(pods) == 6  # two cameras, event-sim, gateway, the probe, the helm test
    for owner, spec in pods:
        name = owner["metadata"]["name"]
        assert spec["hostNetwork"] is True, name
        assert spec["dnsPolicy"] == "ClusterFirstWithHostNet", name
        assert spec["nodeSelector"] == {"rts/real-node": "true"}, name
        assert spec["tolerations"] == [TOLERATE_REAL_NODE], name
        for container in spec["containers"]:
            assert container["image"].startswith("localhost/rts-"), name
            assert container["imagePullPolicy"] == "Never", name


def test_no_two_pods_bind_one_port_of_the_node(objects: list[Obj]) -> None:
    ports = [
        (owner["metadata"]["name"], port["containerPort"])
        for owner, spec in pod_specs(objects)
        for container in spec["containers"]
        for port in container.get("ports", [])
    ]
    numbers = [number for _, number in ports]
    assert len(numbers) == len(set(numbers)), ports
    lobby = named(objects, "Deployment", "streaming-capture-lobby")
    parking = named(objects, "Deployment", "streaming-capture-parking")
    for deployment, port in ((lobby, 9100), (parking, 9101)):
        (container,) = deployment["spec"]["template"]["spec"]["containers"]
        assert env_of(container)["CAPTURE_OPS_PORT"] == str(port)
        assert container["ports"][0]["containerPort"] == port


def test_updates_stop_a_pod_before_its_successor_needs_its_ports(objects: list[Obj]) -> None:
    gateway = named(objects, "Deployment", "streaming-gateway")
    assert gateway["spec"]["strategy"]["rollingUpdate"] == {"maxSurge": 0, "maxUnavailable": 1}
    for deployment in of_kind(objects, "Deployment"):
        if deployment is not gateway:
            assert deployment["spec"]["strategy"] == {"type": "Recreate"}, deployment["metadata"]


def test_the_probe_and_helm_test_reach_the_gateway_without_a_service(objects: list[Obj]) -> None:
    probe = named(objects, "Deployment", "streaming-latency-probe")
    (container,) = probe["spec"]["template"]["spec"]["containers"]
    assert env_of(container)["PROBE_GATEWAY_URL"] == "http://127.0.0.1:8000"
    (test,) = of_kind(objects, "Pod")
    assert env_of(test["spec"]["containers"][0])["GATEWAY_URL"] == "http://127.0.0.1:8000"


def test_without_host_network_nothing_changes(chart: Path) -> None:
    objects = render(chart)
    for owner, spec in pod_specs(objects):
        assert "hostNetwork" not in spec, owner["metadata"]["name"]
    gateway = named(objects, "Deployment", "streaming-gateway")
    assert gateway["spec"]["strategy"]["rollingUpdate"] == {"maxSurge": 1, "maxUnavailable": 0}
    for name in ("streaming-capture-lobby", "streaming-capture-parking"):
        (container,) = named(objects, "Deployment", name)["spec"]["template"]["spec"]["containers"]
        assert container["ports"][0]["containerPort"] == 9100


def test_two_pods_on_one_port_of_the_node_are_refused_naming_the_values(chart: Path) -> None:
    with pytest.raises(RenderError, match=r"gateway.port and eventSim.opsPort .* port 8000"):
        render(chart, *NODE_VALUES, "--set", "eventSim.opsPort=8000")
    with pytest.raises(RenderError, match=r"the ops port of camera parking and eventSim.opsPort"):
        render(chart, *NODE_VALUES, "--set", "capture.opsPort=9109")
