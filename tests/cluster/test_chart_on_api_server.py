"""The chart against a real Kubernetes API server: every value set the static tests
render is accepted (server-side validation, admission, defaulting), the broken one is
refused, what the API server refuses the chart refuses first, and the user's flow —
install, `kubectl scale`, `helm upgrade`, KEDA on and off, uninstall — works."""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from rts_cluster.kube import Kube, Result

from tests.static.chart import VALUE_SETS, VALUES, values_args

RELEASE = "streaming"
GATEWAY = "deployment/streaming-gateway"


def install(
    cluster: Kube, chart: Path, namespace: str, *args: str, release: str = RELEASE
) -> Result:
    return cluster.helm("upgrade", "--install", release, str(chart), "-n", namespace, *args)


def wait_available(cluster: Kube, namespace: str, release: str = RELEASE) -> None:
    cluster.ok(
        "-n",
        namespace,
        "wait",
        "deployment",
        "-l",
        f"app.kubernetes.io/instance={release}",
        "--for=condition=Available",
        "--timeout=90s",
    )


def gateway_replicas(cluster: Kube, namespace: str) -> tuple[int, int]:
    """(spec.replicas, status.readyReplicas) of the gateway."""
    deployment = cluster.json("-n", namespace, "get", GATEWAY)
    return deployment["spec"]["replicas"], deployment["status"].get("readyReplicas", 0)


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.5)
    raise AssertionError(f"{what}: not within {timeout}s")


def release_objects(cluster: Kube, namespace: str, release: str) -> list[str]:
    """Every object of any namespaced kind in `namespace` labelled as the release's, and
    the release's own records (helm keeps them in Secrets labelled name=<release>)."""
    kinds = cluster.ok("api-resources", "--namespaced", "--verbs=list", "-o", "name").split()
    kinds = [k for k in kinds if not k.startswith("events")]
    found = []
    for selector in (f"app.kubernetes.io/instance={release}", f"owner=helm,name={release}"):
        found += cluster.ok(
            "-n",
            namespace,
            "get",
            ",".join(kinds),
            "-l",
            selector,
            "-o",
            "name",
            "--ignore-not-found",
        ).split()
    return found


def manifest(cluster: Kube, namespace: str, release: str = RELEASE) -> list[dict[str, Any]]:
    text = cluster.helm("get", "manifest", release, "-n", namespace).check()
    return [doc for doc in yaml.safe_load_all(text) if doc]


def resource(obj: dict[str, Any]) -> str:
    """kind.group/name, as kubectl takes it."""
    group = obj["apiVersion"].rpartition("/")[0]
    kind = obj["kind"].lower() + (f".{group}" if group else "")
    return f"{kind}/{obj['metadata']['name']}"


@pytest.mark.parametrize("value_set", VALUE_SETS)
def test_every_value_set_is_accepted_by_the_api_server(
    cluster: Kube, chart: Path, namespace: str, value_set: str
) -> None:
    result = install(cluster, chart, namespace, *values_args(value_set))
    assert result.returncode == 0, result.output
    # The CRDs are installed: the chart skipped nothing.
    assert "SKIPPED" not in result.stdout
    rendered = manifest(cluster, namespace)
    live = cluster.json("-n", namespace, "get", *(resource(o) for o in rendered))
    assert len(live["items"]) == len(rendered)
    assert all(item["metadata"]["uid"] for item in live["items"])
    wait_available(cluster, namespace)
    for deployment in cluster.json("-n", namespace, "get", "deployments")["items"]:
        # Defaulted by the API server.
        assert deployment["spec"]["replicas"] >= 1
        assert deployment["spec"]["revisionHistoryLimit"] == 10
    cluster.helm("uninstall", RELEASE, "-n", namespace, "--wait").check()
    wait_for(
        lambda: not release_objects(cluster, namespace, RELEASE),
        60,
        f"{value_set}: the release's objects gone",
    )


def test_the_broken_value_set_is_refused_by_the_api_server(
    cluster: Kube, chart: Path, namespace: str
) -> None:
    result = install(cluster, chart, namespace, "--values", str(VALUES / "broken-objects.yaml"))
    assert result.returncode != 0
    assert "preferredDuringScheduling" in result.output or "tape" in result.output, result.output


# What the API server refuses although a free-form values schema let it through: the
# gateway Deployment as the chart renders it, changed the way each override would.
def _lots(pod: dict[str, Any]) -> None:
    pod["containers"][0]["resources"]["limits"]["memory"] = "lots"


def _above(pod: dict[str, Any]) -> None:
    pod["containers"][0]["resources"]["requests"]["memory"] = "2Gi"


def _space(pod: dict[str, Any]) -> None:
    pod["nodeSelector"] = {"disk type": "ssd"}


def _sometimes(pod: dict[str, Any]) -> None:
    pod["tolerations"] = [{"key": "dedicated", "operator": "Sometimes"}]


REFUSED = {
    "memory quantity 'lots'": (
        _lots,
        ["--set", "gateway.resources.limits.memory=lots"],
        "'lots'",
        "quantities must match",
    ),
    "request above its limit": (
        _above,
        ["--set", "gateway.resources.requests.memory=2Gi"],
        "gateway.resources.requests.memory (2Gi) is above",
        "must be less than or equal to memory limit",
    ),
    "nodeSelector key with a space": (
        _space,
        ["--set", "gateway.nodeSelector.disk type=ssd"],
        "'disk type'",
        "name part must consist of",
    ),
    "toleration operator Sometimes": (
        _sometimes,
        [
            *"--set gateway.tolerations[0].key=dedicated".split(),
            *"--set gateway.tolerations[0].operator=Sometimes".split(),
        ],
        "/gateway/tolerations/0/operator",
        'Unsupported value: "Sometimes"',
    ),
}


@pytest.mark.parametrize("case", REFUSED)
def test_what_the_api_server_refuses_the_chart_refuses_first(
    cluster: Kube, chart: Path, namespace: str, case: str
) -> None:
    change, override, chart_says, server_says = REFUSED[case]
    only = ["--show-only", "templates/gateway-deployment.yaml"]
    rendered = cluster.run(
        [cluster.helm_bin, "template", RELEASE, str(chart), "-n", namespace, *only]
    ).check()
    deployment = yaml.safe_load(rendered)
    broken = copy.deepcopy(deployment)
    change(broken["spec"]["template"]["spec"])
    refused = cluster.kubectl(
        "apply", "--dry-run=server", "-n", namespace, "-f", "-", stdin=json.dumps(broken)
    )
    assert refused.returncode != 0
    assert server_says in refused.output, refused.output
    # The unchanged object is accepted: the refusal is the override's.
    cluster.ok(
        "apply", "--dry-run=server", "-n", namespace, "-f", "-", stdin=json.dumps(deployment)
    )
    # helm refuses the override before it sends anything.
    result = install(cluster, chart, namespace, *override)
    assert result.returncode != 0
    assert chart_says in result.output, result.output
    assert release_objects(cluster, namespace, RELEASE) == []


def test_scale_survives_upgrade_and_keda_takes_the_replicas_and_gives_them_back(
    cluster: Kube, chart: Path, namespace: str
) -> None:
    install(cluster, chart, namespace).check()
    wait_available(cluster, namespace)
    assert gateway_replicas(cluster, namespace) == (1, 1)

    cluster.ok("-n", namespace, "scale", GATEWAY, "--replicas=3")
    cluster.ok("-n", namespace, "rollout", "status", GATEWAY, "--timeout=90s")
    assert gateway_replicas(cluster, namespace) == (3, 3)
    pods = cluster.json("-n", namespace, "get", "pods", "-l", "app.kubernetes.io/component=gateway")
    assert len({p["spec"]["nodeName"] for p in pods["items"]}) == 3  # spread over the nodes

    # The same values again: no conflict over .spec.replicas, and the count stays.
    install(cluster, chart, namespace).check()
    assert gateway_replicas(cluster, namespace) == (3, 3)

    # KEDA on: the ScaledObject takes the gateway; helm no longer manages its replicas.
    install(cluster, chart, namespace, "--set", "gateway.keda.enabled=true").check()
    scaled = cluster.json("-n", namespace, "get", "scaledobject.keda.sh/streaming-gateway")
    assert scaled["spec"]["scaleTargetRef"]["name"] == "streaming-gateway"
    assert scaled["spec"]["maxReplicaCount"] == 6
    assert gateway_replicas(cluster, namespace)[0] == 3
    deployment = cluster.json("-n", namespace, "get", GATEWAY, "--show-managed-fields")
    helm_fields = [m for m in deployment["metadata"]["managedFields"] if m["manager"] == "helm"]
    assert helm_fields
    assert all("f:replicas" not in json.dumps(m["fieldsV1"].get("f:spec", {})) for m in helm_fields)

    # KEDA off again: the ScaledObject goes, the replicas stay where they were.
    install(cluster, chart, namespace, "--set", "gateway.keda.enabled=false").check()
    gone = cluster.kubectl("-n", namespace, "get", "scaledobject.keda.sh/streaming-gateway")
    assert gone.returncode != 0
    assert "NotFound" in gone.output
    assert gateway_replicas(cluster, namespace) == (3, 3)

    cluster.helm("uninstall", RELEASE, "-n", namespace, "--wait").check()
    wait_for(lambda: not release_objects(cluster, namespace, RELEASE), 60, "objects gone")
    wait_for(
        lambda: not cluster.json("-n", namespace, "get", "pods,replicasets")["items"],
        60,
        "pods and ReplicaSets collected",
    )


def test_a_set_replica_count_is_helms_and_the_notes_say_so(
    cluster: Kube, chart: Path, namespace: str
) -> None:
    result = install(cluster, chart, namespace, "--set", "gateway.replicas=2")
    assert "every `helm upgrade` sets the count back to it" in result.check()
    wait_available(cluster, namespace)
    assert gateway_replicas(cluster, namespace) == (2, 2)
    (pdb,) = cluster.json("-n", namespace, "get", "poddisruptionbudgets")["items"]
    wait_for(
        lambda: (
            cluster.json("-n", namespace, "get", "pdb", pdb["metadata"]["name"])["status"].get(
                "disruptionsAllowed"
            )
            == 1
        ),
        60,
        "the budget allows one disruption of two",
    )


def test_two_releases_in_one_namespace_do_not_collide(
    cluster: Kube, chart: Path, namespace: str
) -> None:
    install(cluster, chart, namespace, release="streaming").check()
    second = install(cluster, chart, namespace, release="replay")
    assert second.returncode == 0, second.output
    wait_available(cluster, namespace, "streaming")
    wait_available(cluster, namespace, "replay")
    pools = cluster.json("-n", namespace, "get", "kafkanodepools.kafka.strimzi.io")["items"]
    assert sorted(p["metadata"]["name"] for p in pools) == [
        "replay-streaming-dual",
        "streaming-dual",
    ]
    cluster.helm("uninstall", "replay", "-n", namespace, "--wait").check()
    wait_for(lambda: not release_objects(cluster, namespace, "replay"), 60, "replay's objects gone")
    # The first release is whole.
    left = release_objects(cluster, namespace, "streaming")
    assert len(left) >= len(manifest(cluster, namespace, "streaming"))
    wait_available(cluster, namespace, "streaming")


def test_helm_and_kubectl_see_the_pinned_kubernetes_version(cluster: Kube) -> None:
    version = json.loads(cluster.ok("version", "-o", "json"))
    assert version["serverVersion"]["gitVersion"].startswith("v1.35.")
    assert version["clientVersion"]["gitVersion"] == version["serverVersion"]["gitVersion"]
