"""What the user's flow needs of the chart, checked offline: `kubectl scale` survives
`helm upgrade`, the default image tag is one `make images` builds, custom resources wait
for their CRDs, two releases share a namespace, and what Kubernetes refuses is refused
by the chart first. tests/cluster checks the same against a real API server."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.static.chart import (
    CHART,
    NAMESPACE,
    ROOT,
    Obj,
    RenderError,
    helm,
    named,
    of_kind,
    prepare_chart,
    render,
    served_kinds,
)

CUSTOM_KINDS = {
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


@pytest.fixture(scope="module")
def chart(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return prepare_chart(tmp_path_factory.mktemp("chart"))


def gateway(objects: list[Obj]) -> Obj:
    return named(objects, "Deployment", "streaming-gateway")


def test_gateway_replicas_are_left_to_whoever_scales_it_unless_set(chart: Path) -> None:
    assert "replicas" not in gateway(render(chart))["spec"]
    assert gateway(render(chart, "--set", "gateway.replicas=3"))["spec"]["replicas"] == 3
    assert gateway(render(chart, "--set", "gateway.replicas=0"))["spec"]["replicas"] == 0
    keda = render(chart, "--set", "gateway.replicas=3", "--set", "gateway.keda.enabled=true")
    assert "replicas" not in gateway(keda)["spec"]  # KEDA's HPA owns it


def test_a_disruption_budget_only_guards_more_than_one_replica(chart: Path) -> None:
    assert not of_kind(render(chart), "PodDisruptionBudget")
    assert not of_kind(render(chart, "--set", "gateway.replicas=1"), "PodDisruptionBudget")
    (pdb,) = of_kind(render(chart, "--set", "gateway.replicas=3"), "PodDisruptionBudget")
    assert pdb["spec"] == {
        "minAvailable": 1,
        "selector": {"matchLabels": gateway(render(chart))["spec"]["selector"]["matchLabels"]},
    }
    keda = ["--set", "gateway.keda.enabled=true", "--set", "gateway.keda.minReplicaCount=2"]
    assert of_kind(render(chart, *keda), "PodDisruptionBudget")
    with pytest.raises(RenderError, match=r"gateway.pdb.minAvailable \(2\) must be below"):
        render(chart, "--set", "gateway.replicas=2", "--set", "gateway.pdb.minAvailable=2")


def test_the_default_image_tag_is_the_app_version_make_images_tags(chart: Path) -> None:
    version = yaml.safe_load((CHART / "Chart.yaml").read_text())["appVersion"]
    images = {
        c["image"]
        for d in of_kind(render(chart), "Deployment")
        for c in d["spec"]["template"]["spec"]["containers"]
    }
    assert images == {f"rts-{s}:{version}" for s in ("capture", "event-sim", "gateway")}
    makefile = (ROOT / "Makefile").read_text()
    assert "-t rts-$$s:$(CHART_VERSION)" in makefile
    found = re.search(r"^CHART_VERSION := \$\(shell (.+)\)$", makefile, re.M)
    assert found
    command = found.group(1).replace("$$", "$")
    out = subprocess.run(
        ["sh", "-c", command], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == version


def test_custom_resources_wait_for_their_crds_and_the_notes_say_so(
    chart: Path, tmp_path: Path
) -> None:
    bare = render(chart, crds=False)
    assert not {o["kind"] for o in bare} & CUSTOM_KINDS
    assert {"Deployment", "Service", "Secret"} <= {o["kind"] for o in bare}
    full = render(chart, "--set", "gateway.keda.enabled=true")
    assert CUSTOM_KINDS - {o["kind"] for o in full} == set()
    out = subprocess.run(
        [
            helm(),
            "install",
            "streaming",
            str(chart),
            "--dry-run=client",
            "-n",
            NAMESPACE,
            "--set",
            "gateway.keda.enabled=true",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    notes = out.split("NOTES:", 1)[1]
    assert "SKIPPED" in notes
    assert "kafka.strimzi.io/v1" in notes
    assert "monitoring.coreos.com/v1" in notes
    assert "keda.sh/v1alpha1" in notes
    # With the CRDs (a real API server's capabilities), tests/cluster sees no such line.


def release_objects(chart: Path, release: str) -> list[Obj]:
    out = subprocess.run(
        [
            helm(),
            "template",
            release,
            str(chart),
            "-n",
            NAMESPACE,
            *served_kinds(),
            *"--set gateway.keda.enabled=true --set gateway.replicas=3".split(),
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return [doc for doc in yaml.safe_load_all(out) if doc]


def test_two_releases_in_one_namespace_share_no_object(chart: Path) -> None:
    first, second = release_objects(chart, "streaming"), release_objects(chart, "replay")
    names = [{(o["kind"], o["metadata"]["name"]) for o in objs} for objs in (first, second)]
    assert names[0]
    assert names[0] & names[1] == set()
    # ...and each release's selectors pick only its own pods.
    for objects in (first, second):
        for deployment in of_kind(objects, "Deployment"):
            labels = deployment["spec"]["selector"]["matchLabels"]
            assert labels["app.kubernetes.io/instance"] in ("streaming", "replay")
    pools = {p["metadata"]["name"] for p in of_kind(second, "KafkaNodePool")}
    assert pools == {"replay-streaming-dual"}
    topics = {t["metadata"]["name"]: t["spec"]["topicName"] for t in of_kind(second, "KafkaTopic")}
    assert topics["replay-streaming-video-frames"] == "video-frames"


def test_keda_reaches_kafka_by_the_fully_qualified_service_name(chart: Path) -> None:
    objects = render(chart, "--set", "gateway.keda.enabled=true")
    (scaled,) = of_kind(objects, "ScaledObject")
    bootstrap = scaled["spec"]["triggers"][0]["metadata"]["bootstrapServers"]
    assert bootstrap == f"streaming-kafka-bootstrap.{NAMESPACE}.svc:9093"


LOTS = r"/gateway/resources/limits/memory'?: 'lots'"
ABOVE = r"capture.resources.requests.memory \(1Gi\) is above capture.resources.limits.memory"
SOMETIMES = r"/eventSim/tolerations/0/operator'?: value must be one of"


@pytest.mark.parametrize(
    ("override", "message"),
    [
        # Each passes a free-form schema and is refused by the API server (tests/cluster
        # shows both); the chart refuses it first, naming the value.
        (["--set", "gateway.resources.limits.memory=lots"], LOTS),
        (["--set", "capture.resources.requests.memory=1Gi"], ABOVE),
        (["--set", "gateway.nodeSelector.disk type=ssd"], r"'disk type'"),
        (
            [
                *"--set eventSim.tolerations[0].operator=Sometimes".split(),
                *"--set eventSim.tolerations[0].key=dedicated".split(),
            ],
            SOMETIMES,
        ),
    ],
)
def test_what_kubernetes_refuses_the_chart_refuses_first_naming_the_value(
    chart: Path, override: list[str], message: str
) -> None:
    with pytest.raises(RenderError, match=message):
        render(chart, *override)


def test_the_latency_probe_watches_the_gateway_signed_in(chart: Path) -> None:
    objects = render(chart)
    probe = named(objects, "Deployment", "streaming-latency-probe")
    (container,) = probe["spec"]["template"]["spec"]["containers"]
    assert (
        container["image"] == gateway(objects)["spec"]["template"]["spec"]["containers"][0]["image"]
    )
    assert container["command"] == ["latency-probe"]
    env = {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}
    service = named(objects, "Service", "streaming-gateway")
    assert (
        env["PROBE_GATEWAY_URL"]
        == f"http://streaming-gateway:{service['spec']['ports'][0]['port']}"
    )
    assert env["PROBE_AUTH_SECRET"]["secretKeyRef"]["name"] == "streaming-gateway-auth"
    assert probe["spec"]["replicas"] == 1
    assert not of_kind(
        [
            o
            for o in render(chart, "--set", "probe.enabled=false")
            if o["kind"] == "Deployment" and o["metadata"]["name"].endswith("latency-probe")
        ],
        "Deployment",
    )
