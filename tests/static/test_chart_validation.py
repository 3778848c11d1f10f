"""The chart lints, renders for every value set, and every rendered object is valid."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.static.chart import (
    CHART,
    VALUE_SETS,
    VALUES,
    Obj,
    RenderError,
    crd_schemas,
    helm,
    prepare_chart,
    render,
    validate,
    values_args,
)


@pytest.fixture(scope="module")
def chart(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return prepare_chart(tmp_path_factory.mktemp("chart"))


@pytest.fixture(scope="module")
def rendered(chart: Path) -> dict[str, list[Obj]]:
    return {value_set: render(chart, *values_args(value_set)) for value_set in VALUE_SETS}


@pytest.mark.parametrize("value_set", VALUE_SETS)
def test_helm_lint_strict_passes(chart: Path, value_set: str) -> None:
    out = subprocess.run(
        [helm(), "lint", "--strict", str(chart), *values_args(value_set)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.returncode == 0, out.stdout + out.stderr


@pytest.mark.parametrize("value_set", VALUE_SETS)
def test_every_rendered_object_is_valid(rendered: dict[str, list[Obj]], value_set: str) -> None:
    objects = rendered[value_set]
    assert objects
    problems = [str(p) for obj in objects for p in validate(obj)]
    assert problems == []


def test_value_sets_cover_every_kind_the_chart_can_render(rendered: dict[str, list[Obj]]) -> None:
    kinds = {obj["kind"] for objects in rendered.values() for obj in objects}
    assert kinds >= {
        "Deployment",
        "Service",
        "Ingress",
        "PodDisruptionBudget",
        "NetworkPolicy",
        "ConfigMap",
        "Pod",
        "Kafka",
        "KafkaNodePool",
        "KafkaTopic",
        "KafkaUser",
        "ServiceMonitor",
        "PodMonitor",
        "PrometheusRule",
        "ScaledObject",
        "TriggerAuthentication",
    }
    # Every custom kind has its CRD schema here: none slips through unvalidated.
    custom = {
        (obj["apiVersion"], obj["kind"])
        for objects in rendered.values()
        for obj in objects
        if "." in obj["apiVersion"].split("/")[0]
        and not obj["apiVersion"].startswith(("networking.k8s.io", "policy"))
    }
    assert custom <= set(crd_schemas())


def test_validation_rejects_a_broken_value_set(chart: Path) -> None:
    objects = render(chart, "--values", str(VALUES / "broken-objects.yaml"))
    problems = {(p.kind, p.where) for obj in objects for p in validate(obj)}
    assert ("Deployment", "spec/template/spec/affinity/nodeAffinity") in problems
    assert ("KafkaNodePool", "spec/storage/type") in problems


def test_validation_rejects_unknown_fields_of_custom_resources() -> None:
    topic = {
        "apiVersion": "kafka.strimzi.io/v1",
        "kind": "KafkaTopic",
        "metadata": {"name": "video-frames", "labels": {"strimzi.io/cluster": "c"}},
        "spec": {"partitions": 6, "replicas": 1, "partitionCount": 6},
    }
    assert [p.where for p in validate(topic)] == ["spec"]
    topic["spec"].pop("partitionCount")
    assert validate(topic) == []
    topic["apiVersion"] = "kafka.strimzi.io/v1beta2"  # removed in Strimzi 1.0
    assert validate(topic) != []


@pytest.mark.parametrize(
    ("override", "complaint"),
    [
        (
            ["--set", "capture.cameras[0].id=Lobby_1", "--set", "capture.cameras[0].source=test"],
            "id",
        ),
        (["--set", "gateway.replicaCount=3"], "replicaCount"),
        (["--set", "kafka.mode=kraft"], "mode"),
        (["--set", "gateway.env.gateway_port=1"], "gateway_port"),
        (["--set", "kafka.strimzi.nodePools[0].roles={zookeeper}"], "roles"),
    ],
)
def test_values_schema_rejects_bad_values(chart: Path, override: list[str], complaint: str) -> None:
    with pytest.raises(RenderError, match=complaint):
        render(chart, *override)


def test_values_schema_describes_every_value() -> None:
    schema = json.loads((CHART / "values.schema.json").read_text())
    values = yaml.safe_load((CHART / "values.yaml").read_text())

    def walk(value: Any, node: dict[str, Any], path: str, item: bool = False) -> list[str]:
        missing = []
        if "description" not in node and path and not item:
            missing.append(f"{path}: no description")
        if isinstance(value, dict) and "properties" in node:
            assert node.get("additionalProperties") is False, f"{path}: open object"
            for key, child in value.items():
                if key not in node["properties"]:
                    missing.append(f"{path}.{key}: not in the schema")
                else:
                    missing += walk(child, node["properties"][key], f"{path}.{key}")
        elif isinstance(value, list) and isinstance(node.get("items"), dict):
            for n, element in enumerate(value):
                missing += walk(element, node["items"], f"{path}[{n}]", item=True)
        return missing

    assert walk(values, schema, "") == []


def test_chart_without_observability_files_says_which_one_is_missing(tmp_path: Path) -> None:
    bare = tmp_path / "streaming"
    bare.mkdir()
    for item in CHART.iterdir():
        if item.name != "files":
            (bare / item.name).symlink_to(item)
    (bare / "files").mkdir()
    for generated in ("topics.yaml", "acls.yaml"):  # `make chart-topics` writes these
        (bare / "files" / generated).symlink_to(CHART / "files" / generated)
    with pytest.raises(RenderError, match=r"files/kafka-metrics\.yaml"):
        render(bare)
    # Without dashboards or alerts, those objects are simply absent.
    objects = render(bare, "--set", "kafka.strimzi.metrics=false")
    assert not [o for o in objects if o["kind"] in ("PrometheusRule",)]
    assert not [o for o in objects if "grafana_dashboard" in o["metadata"].get("labels", {})]


def test_objects_are_validated_against_the_kubernetes_version_the_cluster_runs() -> None:
    from tests.static.chart import KUBERNETES_VERSION, ROOT

    versions = (ROOT / "k8s" / "versions.mk").read_text()
    node = re.search(
        r"^KIND_NODE_IMAGE := kindest/node:v(\d+\.\d+)\.\d+@sha256:[0-9a-f]{64}$", versions, re.M
    )
    minikube = re.search(r"^MINIKUBE_KUBERNETES_VERSION := v(\d+\.\d+)\.\d+$", versions, re.M)
    assert node
    assert minikube
    assert node.group(1) == minikube.group(1) == KUBERNETES_VERSION


def test_kind_maps_the_ingress_ports_to_the_host() -> None:
    from tests.static.chart import ROOT

    config = yaml.safe_load((ROOT / "k8s" / "kind-config.yaml").read_text())
    (node,) = config["nodes"]
    assert {(m["containerPort"], m["hostPort"]) for m in node["extraPortMappings"]} == {
        (80, 80),
        (443, 443),
    }
    ingress = yaml.safe_load((ROOT / "k8s" / "ingress-nginx.yaml").read_text())
    assert ingress["controller"]["hostPort"]["enabled"] is True
    assert ingress["controller"]["nodeSelector"] == {"ingress-ready": "true"}
    assert 'node-labels: "ingress-ready=true"' in node["kubeadmConfigPatches"][0]
