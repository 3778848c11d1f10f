"""What the rendered chart must agree with: itself, the services, the contracts, the pom."""

from __future__ import annotations

import base64
import hashlib
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from rts_capture.settings import CaptureSettings
from rts_common.contracts import PLAYBACK_EVENTS, TOPICS, VIDEO_FRAMES
from rts_common.settings import Settings
from rts_devstack import proxy
from rts_eventsim.settings import EventSimSettings
from rts_gateway.replica import REPLICA_HEADER
from rts_gateway.service import Gateway
from rts_gateway.settings import GatewaySettings
from rts_notifier.settings import NotifierSettings
from rts_probe.settings import ProbeSettings

from tests.static.chart import (
    ROOT,
    VALUE_SETS,
    Obj,
    env_of,
    matches,
    named,
    of_kind,
    pod_labels,
    pod_specs,
    prepare_chart,
    render,
    values_args,
)

SETTINGS: dict[str, type[Settings]] = {
    "capture": CaptureSettings,
    "event-sim": EventSimSettings,
    "gateway": GatewaySettings,
    "latency-probe": ProbeSettings,
    "notifier": NotifierSettings,
}
# The Deployments that talk to Kafka (the probe only watches the gateway).
KAFKA_CLIENTS = {"capture", "event-sim", "gateway", "notifier"}


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[Obj]]:
    chart = prepare_chart(tmp_path_factory.mktemp("chart"))
    return {value_set: render(chart, *values_args(value_set)) for value_set in VALUE_SETS}


def each_set(rendered: dict[str, list[Obj]]) -> list[tuple[str, list[Obj]]]:
    return list(rendered.items())


def container_ports(objects: list[Obj], selector: dict[str, object]) -> set[str]:
    """Port names of the containers of the pods a selector selects."""
    names = set()
    for owner, spec in pod_specs(objects):
        if matches(selector, pod_labels(owner)):
            for container in spec["containers"]:
                names |= {port["name"] for port in container.get("ports", [])}
    return names


def test_every_service_selects_exactly_its_deployment(rendered: dict[str, list[Obj]]) -> None:
    for value_set, objects in each_set(rendered):
        for service in of_kind(objects, "Service"):
            selector = service["spec"]["selector"]
            selected = [
                d["metadata"]["name"]
                for d in of_kind(objects, "Deployment")
                if matches(selector, pod_labels(d))
            ]
            assert selected == [service["metadata"]["name"]], (value_set, selected)
            ports = container_ports(objects, selector)
            for port in service["spec"]["ports"]:
                assert port["targetPort"] in ports, (value_set, port)


def test_every_deployment_selector_matches_its_own_pods_only(
    rendered: dict[str, list[Obj]],
) -> None:
    for value_set, objects in each_set(rendered):
        deployments = of_kind(objects, "Deployment")
        for deployment in deployments:
            selector = deployment["spec"]["selector"]
            owners = [d for d in deployments if matches(selector, pod_labels(d))]
            assert owners == [deployment], (value_set, deployment["metadata"]["name"])


def test_every_port_named_in_a_probe_exists(rendered: dict[str, list[Obj]]) -> None:
    for value_set, objects in each_set(rendered):
        for owner, spec in pod_specs(objects):
            for container in spec["containers"]:
                ports = {port["name"] for port in container.get("ports", [])}
                for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
                    if probe in container:
                        port = container[probe]["httpGet"]["port"]
                        assert port in ports, (value_set, owner["metadata"]["name"], probe)


def test_every_port_named_in_a_monitor_exists(rendered: dict[str, list[Obj]]) -> None:
    for value_set, objects in each_set(rendered):
        for monitor in of_kind(objects, "ServiceMonitor"):
            services = [
                s
                for s in of_kind(objects, "Service")
                if matches(monitor["spec"]["selector"], s["metadata"]["labels"])
            ]
            assert services, (value_set, monitor["metadata"]["name"])
            for endpoint in monitor["spec"]["endpoints"]:
                for service in services:
                    assert endpoint["port"] in {p["name"] for p in service["spec"]["ports"]}
        for monitor in of_kind(objects, "PodMonitor"):
            if "strimzi.io/cluster" in monitor["spec"]["selector"]["matchLabels"]:
                # Strimzi's pods: it names their metrics port tcp-prometheus.
                ports = {"tcp-prometheus"}
            else:
                ports = container_ports(objects, monitor["spec"]["selector"])
                assert ports, (value_set, monitor["metadata"]["name"])
            for endpoint in monitor["spec"]["podMetricsEndpoints"]:
                assert endpoint["port"] in ports, (value_set, endpoint)


def test_network_policies_open_only_ports_the_pods_have(rendered: dict[str, list[Obj]]) -> None:
    for value_set, objects in each_set(rendered):
        policies = of_kind(objects, "NetworkPolicy")
        for policy in policies:
            ports = container_ports(objects, policy["spec"]["podSelector"])
            for rule in policy["spec"].get("ingress", []):
                assert {p["port"] for p in rule["ports"]} <= ports, policy["metadata"]["name"]
        if policies:
            # Every pod is covered, both ways: none accepts or sends traffic the chart did
            # not mean.
            for owner, _spec in pod_specs(objects):
                covering = [
                    p for p in policies if matches(p["spec"]["podSelector"], pod_labels(owner))
                ]
                where = (value_set, owner["metadata"]["name"])
                assert covering, where
                assert {"Ingress", "Egress"} <= {
                    kind for p in covering for kind in p["spec"]["policyTypes"]
                }, where


def _egress(objects: list[Obj], component: str) -> list[Obj]:
    (policy,) = [
        p
        for p in of_kind(objects, "NetworkPolicy")
        if p["metadata"]["labels"].get("app.kubernetes.io/component") == component
    ]
    return list(policy["spec"]["egress"])


def test_services_reach_only_kafka_and_dns_and_the_test_only_the_gateway(
    rendered: dict[str, list[Obj]],
) -> None:
    dns = {
        "to": [
            {
                "namespaceSelector": {
                    "matchLabels": {"kubernetes.io/metadata.name": "kube-system"}
                },
                "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}},
            }
        ],
        "ports": [{"port": 53, "protocol": "UDP"}, {"port": 53, "protocol": "TCP"}],
    }

    def brokers(cluster: str, port: int) -> Obj:
        labels = {"strimzi.io/cluster": cluster, "strimzi.io/broker-role": "true"}
        return {
            "to": [{"podSelector": {"matchLabels": labels}}],
            "ports": [{"port": port, "protocol": "TCP"}],
        }

    default = rendered["default"]
    for component in ("capture", "event-sim", "gateway"):
        assert _egress(default, component) == [dns, brokers("streaming", 9093)], component
    production = rendered["production"]
    cameras = {
        "to": [{"ipBlock": {"cidr": "10.20.0.0/24"}}],
        "ports": [{"port": 554, "protocol": "TCP"}],
    }
    assert _egress(production, "capture") == [dns, brokers("events", 9093), cameras]
    assert _egress(production, "gateway") == [dns, brokers("events", 9093)]
    gateway_pods = {
        "app.kubernetes.io/name": "streaming",
        "app.kubernetes.io/instance": "streaming",
        "app.kubernetes.io/component": "gateway",
    }
    assert _egress(default, "test") == [
        dns,
        {
            "to": [{"podSelector": {"matchLabels": gateway_pods}}],
            "ports": [{"port": 8000, "protocol": "TCP"}],
        },
    ]


def test_the_gateway_ops_port_is_probed_and_scraped_but_never_routed(
    rendered: dict[str, list[Obj]],
) -> None:
    for value_set, objects in each_set(rendered):
        gateway = named(objects, "Deployment", "streaming-gateway")
        (container,) = gateway["spec"]["template"]["spec"]["containers"]
        for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
            assert container[probe]["httpGet"]["port"] == "ops", (value_set, probe)
        assert env_of(container)["GATEWAY_OPS_PORT"] == "9130"
        for monitor in of_kind(objects, "ServiceMonitor"):
            assert [e["port"] for e in monitor["spec"]["endpoints"]] == ["ops"]
        for ingress in of_kind(objects, "Ingress"):
            ports = {
                p["backend"]["service"]["port"]["name"]
                for r in ingress["spec"]["rules"]
                for p in r["http"]["paths"]
            }
            assert ports == {"http"}, value_set
        for policy in of_kind(objects, "NetworkPolicy"):
            if policy["metadata"]["name"] == "streaming-gateway":
                ops = [r for r in policy["spec"]["ingress"] if r["ports"][0]["port"] == "ops"]
                assert ops, value_set
                assert all(r.get("from") for r in ops), "the ops port is for Prometheus only"


def test_only_app_pods_are_kafka_listener_peers(rendered: dict[str, list[Obj]]) -> None:
    kafka = named(rendered["default"], "Kafka", "streaming")
    (listener,) = kafka["spec"]["kafka"]["listeners"]
    (peer,) = listener["networkPolicyPeers"]
    clients = {
        o["metadata"]["name"]
        for o, _ in pod_specs(rendered["default"])
        if matches(peer["podSelector"], pod_labels(o))
    }
    apps = {
        d["metadata"]["name"]
        for d in of_kind(rendered["default"], "Deployment")
        if d["metadata"]["labels"]["app.kubernetes.io/component"] in KAFKA_CLIENTS
    }
    assert clients == apps


def test_the_ingress_redirects_to_tls_when_it_has_tls(rendered: dict[str, list[Obj]]) -> None:
    (secure,) = of_kind(rendered["production"], "Ingress")
    assert secure["metadata"]["annotations"]["nginx.ingress.kubernetes.io/force-ssl-redirect"]
    (plain,) = of_kind(rendered["default"], "Ingress")
    assert "nginx.ingress.kubernetes.io/force-ssl-redirect" not in plain["metadata"]["annotations"]
    gateway = named(rendered["default"], "Deployment", "streaming-gateway")
    env = env_of(gateway["spec"]["template"]["spec"]["containers"][0])
    assert env["GATEWAY_TRUSTED_PROXIES"] == "10.0.0.0/8,172.16.0.0/12,192.168.0.0/16"


def test_a_new_sign_in_secret_rolls_the_gateway(
    rendered: dict[str, list[Obj]], tmp_path: Path
) -> None:
    def checksum(objects: list[Obj]) -> str:
        gateway = named(objects, "Deployment", "streaming-gateway")
        return str(
            gateway["spec"]["template"]["metadata"]["annotations"]["rts/auth-secret-checksum"]
        )

    secret = named(rendered["default"], "Secret", "streaming-gateway-auth")
    assert (
        checksum(rendered["default"])
        == hashlib.sha256(secret["data"]["secret"].encode()).hexdigest()
    )
    # Supplied from outside (GitOps): the checksum follows the value given for it.
    assert not [
        s for s in of_kind(rendered["production"], "Secret") if "auth" in s["metadata"]["name"]
    ]
    chart = prepare_chart(tmp_path)
    production = values_args("production")
    changed = render(chart, *production, "--set", "gateway.auth.checksum=2026-12-01")
    assert checksum(changed) != checksum(rendered["production"])


def test_images_are_pulled_by_tag_and_digest_when_given(rendered: dict[str, list[Obj]]) -> None:
    objects = rendered["production"]
    gateway = named(objects, "Deployment", "streaming-gateway")
    assert gateway["spec"]["template"]["spec"]["containers"][0]["image"] == (
        "registry.example.com/rts/rts-gateway:1.4.2@sha256:"
        "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
    )
    capture = named(objects, "Deployment", "streaming-capture-entrance")
    image = capture["spec"]["template"]["spec"]["containers"][0]["image"]
    assert image == "registry.example.com/rts/rts-capture:1.4.2"


def test_the_ingress_routes_to_the_gateway_service(rendered: dict[str, list[Obj]]) -> None:
    for value_set, objects in each_set(rendered):
        for ingress in of_kind(objects, "Ingress"):
            for rule in ingress["spec"]["rules"]:
                for path in rule["http"]["paths"]:
                    backend = path["backend"]["service"]
                    service = named(objects, "Service", backend["name"])
                    assert backend["port"]["name"] in {p["name"] for p in service["spec"]["ports"]}
            annotations = ingress["metadata"]["annotations"]
            assert annotations["nginx.ingress.kubernetes.io/affinity"] == "cookie", value_set
            assert int(annotations["nginx.ingress.kubernetes.io/proxy-read-timeout"]) >= 3600
            assert annotations["nginx.ingress.kubernetes.io/proxy-buffering"] == "off"


def test_the_local_nginx_is_configured_like_the_ingress(
    rendered: dict[str, list[Obj]], tmp_path: Path
) -> None:
    """`make run GATEWAYS=N` puts nginx where the cluster has ingress-nginx: the same
    affinity cookie, timeouts, buffering and WebSocket handling."""
    (ingress,) = of_kind(rendered["default"], "Ingress")
    annotation = {
        k.removeprefix("nginx.ingress.kubernetes.io/"): v
        for k, v in ingress["metadata"]["annotations"].items()
    }
    front = proxy.Proxy(8000, tmp_path)
    config = front.render({"gateway-1": "127.0.0.1:8001", "gateway-2": "127.0.0.1:8002"})
    assert annotation["affinity"] == "cookie"
    assert annotation["affinity-mode"] == "persistent"  # a cookie outlives scaling up
    cookie = (
        f"{annotation['session-cookie-name']}=$upstream_http_x_gateway_replica; "
        f"Path={annotation['session-cookie-path']}; "
        f"Max-Age={annotation['session-cookie-max-age']}; "
        f"SameSite={annotation['session-cookie-samesite']}; HttpOnly"
    )
    assert f'default "{cookie}";' in config
    assert f"{annotation['session-cookie-name']}=(?<replica>" in config
    assert f"proxy_http_version {annotation['proxy-http-version']};" in config
    assert f"proxy_read_timeout {annotation['proxy-read-timeout']}s;" in config
    assert f"proxy_send_timeout {annotation['proxy-send-timeout']}s;" in config
    assert f"proxy_buffering {annotation['proxy-buffering']};" in config
    assert f"proxy_request_buffering {annotation['proxy-request-buffering']};" in config
    # What ingress-nginx does without being asked: WebSocket upgrades, the client's host.
    assert "proxy_set_header Upgrade $http_upgrade;" in config
    assert "proxy_set_header Connection $connection_upgrade;" in config
    assert "proxy_set_header Host $http_host;" in config
    # The cookie names the replica by the header every gateway response carries.
    assert proxy.REPLICA_HEADER == REPLICA_HEADER
    executable = proxy.binary()
    assert executable, "nginx is missing: run `make system-deps` (CI installs it)"
    front.write({"gateway-1": "127.0.0.1:8001"})
    front.check(executable)


def test_containers_run_as_non_root_on_a_read_only_root_filesystem(
    rendered: dict[str, list[Obj]],
) -> None:
    for value_set, objects in each_set(rendered):
        for owner, spec in pod_specs(objects):
            pod = spec.get("securityContext", {})
            for container in spec["containers"]:
                context = {**pod, **container.get("securityContext", {})}
                where = (value_set, owner["metadata"]["name"], container["name"])
                assert context.get("runAsNonRoot") is True, where
                assert context.get("runAsUser", 0) > 0, where
                assert context.get("readOnlyRootFilesystem") is True, where
                assert context.get("allowPrivilegeEscalation") is False, where
                assert context.get("capabilities", {}).get("drop") == ["ALL"], where
                assert not context.get("capabilities", {}).get("add"), where


def test_every_environment_variable_is_a_setting_of_its_service(
    rendered: dict[str, list[Obj]],
) -> None:
    for value_set, objects in each_set(rendered):
        for deployment in of_kind(objects, "Deployment"):
            component = deployment["metadata"]["labels"]["app.kubernetes.io/component"]
            settings = SETTINGS[component]
            known = {settings.env_name(name) for name in settings.model_fields}
            for container in deployment["spec"]["template"]["spec"]["containers"]:
                unknown = set(env_of(container)) - known
                assert not unknown, (value_set, deployment["metadata"]["name"], unknown)


def test_services_authenticate_as_their_kafka_user_and_trust_the_cluster_ca(
    rendered: dict[str, list[Obj]],
) -> None:
    objects = rendered["default"]
    users = {u["metadata"]["name"] for u in of_kind(objects, "KafkaUser")}
    for deployment in of_kind(objects, "Deployment"):
        if deployment["metadata"]["labels"]["app.kubernetes.io/component"] not in KAFKA_CLIENTS:
            continue
        spec = deployment["spec"]["template"]["spec"]
        (container,) = spec["containers"]
        env = env_of(container)
        assert env["KAFKA_SECURITY_PROTOCOL"] == "SASL_SSL"
        assert env["KAFKA_BOOTSTRAP"] == "streaming-kafka-bootstrap:9093"
        assert env["KAFKA_USERNAME"] in users
        assert env["KAFKA_PASSWORD"]["secretKeyRef"] == {
            "name": env["KAFKA_USERNAME"],
            "key": "password",
        }
        ca = next(v for v in spec["volumes"] if v["name"] == "kafka-ca")
        assert ca["secret"]["secretName"] == "streaming-cluster-ca-cert"
        mount = next(m for m in container["volumeMounts"] if m["name"] == "kafka-ca")
        assert env["KAFKA_CA_FILE"] == f"{mount['mountPath']}/ca.crt"


def test_topics_equal_the_contracts(rendered: dict[str, list[Obj]]) -> None:
    for value_set, prefix in (("default", ""), ("production", "prod.")):
        topics = {
            t["spec"]["topicName"]: t["spec"] for t in of_kind(rendered[value_set], "KafkaTopic")
        }
        assert set(topics) == {prefix + spec.name for spec in TOPICS}
        for spec in TOPICS:
            topic = topics[prefix + spec.name]
            assert topic["partitions"] == spec.partitions, spec.name
            assert topic["config"] == dict(spec.config), spec.name
    replicas = {t["spec"]["replicas"] for t in of_kind(rendered["production"], "KafkaTopic")}
    assert replicas == {3}


def test_video_retention_is_one_value_applied_to_the_frames_topic(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    chart = prepare_chart(tmp_path_factory.mktemp("chart"))
    objects = render(chart, "--set", "kafka.videoRetentionMinutes=90")
    configs = {t["spec"]["topicName"]: t["spec"]["config"] for t in of_kind(objects, "KafkaTopic")}
    assert configs[VIDEO_FRAMES.name]["retention.ms"] == str(90 * 60_000)
    others = {name: c for name, c in configs.items() if name != VIDEO_FRAMES.name}
    assert others == {spec.name: dict(spec.config) for spec in TOPICS if spec != VIDEO_FRAMES}


def test_chart_topic_file_is_generated_from_the_contracts() -> None:
    check = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "chart_topics.py"), "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert check.returncode == 0, check.stderr


def test_keda_never_scales_the_gateway_beyond_the_events_partitions(
    rendered: dict[str, list[Obj]],
) -> None:
    assert not of_kind(rendered["default"], "ScaledObject")  # off by default
    for value_set in ("production", "external"):
        (scaled,) = of_kind(rendered[value_set], "ScaledObject")
        assert scaled["spec"]["maxReplicaCount"] == PLAYBACK_EVENTS.partitions
        (trigger,) = scaled["spec"]["triggers"]
        assert trigger["type"] == "kafka"
        assert trigger["metadata"]["consumerGroup"] == "gateway-dashboard"
        assert trigger["metadata"]["topic"].endswith(PLAYBACK_EVENTS.name)
        auth = named(
            rendered[value_set], "TriggerAuthentication", trigger["authenticationRef"]["name"]
        )
        parameters = {r["parameter"] for r in auth["spec"]["secretTargetRef"]} | {
            r["parameter"] for r in auth["spec"].get("configMapTargetRef", [])
        }
        assert parameters == {"username", "password", "ca"}
        # Never the gateway's own credentials: KEDA's user can only describe.
        assert "gateway" not in str(auth["spec"]["secretTargetRef"])
        deployment = named(
            rendered[value_set], "Deployment", scaled["spec"]["scaleTargetRef"]["name"]
        )
        assert "replicas" not in deployment["spec"]  # the HPA owns it


def test_kafka_acls_grant_each_service_exactly_what_it_does(
    rendered: dict[str, list[Obj]],
) -> None:
    def grants(user: Obj) -> set[tuple[str, str, str, str]]:
        return {
            (
                acl["resource"]["type"],
                acl["resource"].get("name", ""),
                acl["resource"].get("patternType", ""),
                op,
            )
            for acl in user["spec"]["authorization"]["acls"]
            for op in acl["operations"]
        }

    def topic(name: str, *ops: str) -> set[tuple[str, str, str, str]]:
        return {("topic", f"prod.{name}", "literal", op) for op in ops}

    objects = rendered["production"]
    # A user per camera; KEDA reads lag as a user of its own; event-sim is disabled there.
    assert {u["metadata"]["name"] for u in of_kind(objects, "KafkaUser")} == {
        "streaming-capture-entrance",
        "streaming-capture-warehouse",
        "streaming-gateway",
        "streaming-notifier",
        "streaming-autoscaler",
    }
    assert grants(named(objects, "KafkaUser", "streaming-notifier")) == (
        topic("video-detections", "Read", "Describe")
        | topic("dead-letters", "Write", "Describe")
        | {("group", "notifier", "literal", op) for op in ("Read", "Describe")}
    )
    capture = (
        topic("video-frames", "Write", "Describe")
        | topic("video-detections", "Write", "Describe")
        | topic("video-cameras", "Write", "Describe")
    )
    assert grants(named(objects, "KafkaUser", "streaming-capture-entrance")) == capture
    assert grants(named(objects, "KafkaUser", "streaming-capture-warehouse")) == capture
    assert grants(named(objects, "KafkaUser", "streaming-gateway")) == (
        topic("video-frames", "Read", "Describe")
        | topic("video-cameras", "Read", "Describe")
        | topic("playback-events", "Read", "Describe")
        | topic("video-detections", "Read", "Describe")
        | topic("dashboard-broadcast", "Read", "Write", "Describe")
        | topic("qoe-checkpoints", "Read", "Write", "Describe")
        | topic("gateway-sessions", "Read", "Write", "Describe")
        | topic("dead-letters", "Write", "Describe")
        | {("group", "gateway-dashboard", "literal", op) for op in ("Read", "Describe")}
        | {("group", "gateway-dashboard-detections", "literal", op) for op in ("Read", "Describe")}
        | {("group", "gateway-direct-", "prefix", op) for op in ("Read", "Describe")}
    )
    assert grants(named(objects, "KafkaUser", "streaming-autoscaler")) == (
        topic("playback-events", "Describe")
        | {("group", "gateway-dashboard", "literal", "Describe")}
    )
    event_sim = named(rendered["default"], "KafkaUser", "streaming-event-sim")
    assert grants(event_sim) == {
        ("topic", "playback-events", "literal", "Write"),
        ("topic", "playback-events", "literal", "Describe"),
    }
    for camera in ("entrance", "warehouse"):
        deployment = named(objects, "Deployment", f"streaming-capture-{camera}")
        env = env_of(deployment["spec"]["template"]["spec"]["containers"][0])
        assert env["KAFKA_USERNAME"] == f"streaming-capture-{camera}"


def test_gateway_consumer_group_ids_are_the_ones_the_acls_name() -> None:
    """The ACLs above hard-code the gateway's group naming; this pins it to the code."""
    settings = GatewaySettings(async_mode="threading", group_id="gateway-dashboard")
    gateway = Gateway(settings)
    groups = {loop.name: loop.group_id for loop in gateway.bridge.loops}
    assert groups.pop("events") == "gateway-dashboard"
    assert groups.pop("detections") == "gateway-dashboard-detections"
    assert {"directory", "frames", "broadcast", "probe"} <= set(groups)
    for name, group in groups.items():
        assert group.startswith("gateway-direct-"), name


def test_external_kafka_mode_creates_no_kafka_resources(rendered: dict[str, list[Obj]]) -> None:
    objects = rendered["external"]
    assert not [o for o in objects if o["apiVersion"].startswith("kafka.strimzi.io")]
    gateway = named(objects, "Deployment", "streaming-gateway")
    env = env_of(gateway["spec"]["template"]["spec"]["containers"][0])
    assert env["KAFKA_BOOTSTRAP"] == "kafka-0.example.net:9096,kafka-1.example.net:9096"
    assert env["KAFKA_SASL_MECHANISM"] == "SCRAM-SHA-256"
    assert env["KAFKA_USERNAME"]["secretKeyRef"] == {"name": "kafka-gateway", "key": "user"}
    assert env["KAFKA_CA_FILE"] == "/etc/kafka-ca/ca.pem"


def test_separate_controller_and_broker_pools(rendered: dict[str, list[Obj]]) -> None:
    pools = {
        p["metadata"]["name"]: p["spec"] for p in of_kind(rendered["production"], "KafkaNodePool")
    }
    # Named after their cluster (kafka.strimzi.clusterName: events in that value set).
    assert pools["events-controllers"]["roles"] == ["controller"]
    assert pools["events-brokers"]["roles"] == ["broker"]
    assert all(p["replicas"] == 3 for p in pools.values())
    (dual,) = of_kind(rendered["default"], "KafkaNodePool")
    assert sorted(dual["spec"]["roles"]) == ["broker", "controller"]


def test_kafka_version_is_the_local_brokers() -> None:
    pom = (ROOT / "tools" / "kafka" / "pom.xml").read_text()
    match = re.search(r"<kafka\.version>([^<]+)</kafka\.version>", pom)
    assert match
    values = yaml.safe_load((ROOT / "helm" / "streaming" / "values.yaml").read_text())
    strimzi = values["kafka"]["strimzi"]
    assert strimzi["version"] == match.group(1)
    major, minor, _ = match.group(1).split(".")
    assert strimzi["metadataVersion"].startswith(f"{major}.{minor}-IV")


def test_one_capture_deployment_per_camera(rendered: dict[str, list[Obj]]) -> None:
    objects = rendered["production"]
    captures = {
        d["metadata"]["labels"]["rts/camera"]: env_of(
            d["spec"]["template"]["spec"]["containers"][0]
        )
        for d in of_kind(objects, "Deployment")
        if d["metadata"]["labels"]["app.kubernetes.io/component"] == "capture"
    }
    assert set(captures) == {"entrance", "warehouse"}
    # A URL with credentials comes from a Secret, never a plain value in the Deployment.
    assert captures["entrance"]["CAPTURE_SOURCE"] == {
        "secretKeyRef": {"name": "camera-entrance", "key": "url"}
    }
    assert captures["warehouse"]["CAPTURE_SOURCE"] == "rtsp://cameras.example.com/warehouse"
    assert captures["entrance"]["CAPTURE_FACE_EVERY"] == "10"
    assert captures["warehouse"]["CAPTURE_FACES"] == "false"
    assert captures["warehouse"]["CAPTURE_RECONNECT_MAX"] == "60"
    assert all(
        d["spec"]["replicas"] == 1
        for d in of_kind(objects, "Deployment")
        if d["metadata"]["labels"]["app.kubernetes.io/component"] == "capture"
    )


def test_monitors_carry_the_kube_prometheus_stack_release_label(
    rendered: dict[str, list[Obj]],
) -> None:
    kinds = ("ServiceMonitor", "PodMonitor", "PrometheusRule")
    monitors = [o for o in rendered["default"] if o["kind"] in kinds]
    assert {o["kind"] for o in monitors} == set(kinds)
    assert all(o["metadata"]["labels"]["release"] == "kube-prometheus-stack" for o in monitors)
    dashboards = [
        o
        for o in of_kind(rendered["default"], "ConfigMap")
        if "grafana_dashboard" in o["metadata"]["labels"]
    ]
    assert dashboards
    assert all(o["metadata"]["labels"]["grafana_dashboard"] == "1" for o in dashboards)


def test_helm_test_pod_fetches_a_snapshot_of_a_configured_camera(
    rendered: dict[str, list[Obj]],
) -> None:
    pod = named(rendered["default"], "Pod", "streaming-test-gateway")
    assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    env = env_of(pod["spec"]["containers"][0])
    assert env["CAMERA"] == "lobby"
    service = named(rendered["default"], "Service", "streaming-gateway")
    assert env["GATEWAY_URL"] == f"http://streaming-gateway:{service['spec']['ports'][0]['port']}"
    assert "/snapshot/" in pod["spec"]["containers"][0]["args"][0]


def test_notes_render_for_every_value_set(tmp_path: Path) -> None:
    from tests.static.chart import helm

    chart = prepare_chart(tmp_path)
    for value_set in VALUE_SETS:
        out = subprocess.run(
            [
                helm(),
                "install",
                "streaming",
                str(chart),
                "--dry-run=client",
                "-n",
                "rts",
                *values_args(value_set),
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        assert out.returncode == 0, out.stderr
        notes = out.stdout.split("NOTES:", 1)[1]
        assert "helm test streaming" in notes
        assert "kubectl -n rts port-forward svc/streaming-gateway" in notes


def test_the_gateway_signs_in_with_the_secret_the_chart_makes(
    rendered: dict[str, list[Obj]], tmp_path: Path
) -> None:
    objects = rendered["default"]
    secrets = [
        s for s in of_kind(objects, "Secret") if s["metadata"]["name"].endswith("-gateway-auth")
    ]
    assert len(secrets) == 1
    key, value = next(iter(secrets[0]["data"].items()))
    assert len(base64.b64decode(value)) >= 32
    gateway = next(
        d for d in of_kind(objects, "Deployment") if d["metadata"]["name"].endswith("-gateway")
    )
    env = env_of(gateway["spec"]["template"]["spec"]["containers"][0])
    ref = env["GATEWAY_AUTH_SECRET"]["secretKeyRef"]
    assert (ref["name"], ref["key"]) == (secrets[0]["metadata"]["name"], key)
    chart = prepare_chart(tmp_path / "chart")
    signed_out = render(chart, "--set", "gateway.auth.enabled=false")
    assert not [
        s for s in of_kind(signed_out, "Secret") if s["metadata"]["name"].endswith("-gateway-auth")
    ]
    gateway = next(
        d for d in of_kind(signed_out, "Deployment") if d["metadata"]["name"].endswith("-gateway")
    )
    assert "GATEWAY_AUTH_SECRET" not in env_of(gateway["spec"]["template"]["spec"]["containers"][0])
