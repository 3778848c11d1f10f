"""The real node's and its Prometheus's own logic, without a kubelet: the pause image
archive, the ports it picks, the scrape configuration written from the chart's monitors
(checked by Debian's promtool), and the targets the discovery serves."""

from __future__ import annotations

import fcntl
import hashlib
import io
import json
import os
import subprocess
import tarfile
from pathlib import Path

import pytest
import yaml
from rts_cluster.discovery import endpointslice_targets, pod_targets
from rts_cluster.kube import ClusterError
from rts_cluster.monitoring import label_name, scrape_configs
from rts_cluster.node import PAUSE_IMAGE, mounts_under, pause_image_archive
from rts_cluster.ports import free_ports
from rts_devstack.ports import LOCKS, port_range

POD_MONITOR = {
    "kind": "PodMonitor",
    "metadata": {"name": "streaming-apps", "namespace": "rts"},
    "spec": {
        "selector": {
            "matchLabels": {"app.kubernetes.io/instance": "streaming"},
            "matchExpressions": [
                {
                    "key": "app.kubernetes.io/component",
                    "operator": "In",
                    "values": ["capture", "event-sim"],
                }
            ],
        },
        "podMetricsEndpoints": [{"port": "ops", "path": "/metrics", "interval": "2s"}],
    },
}
SERVICE_MONITOR = {
    "kind": "ServiceMonitor",
    "metadata": {"name": "streaming-gateway", "namespace": "rts"},
    "spec": {
        "selector": {"matchLabels": {"app.kubernetes.io/component": "gateway"}},
        "endpoints": [
            {
                "port": "ops",
                "path": "/metrics",
                "interval": "2s",
                "relabelings": [
                    {"sourceLabels": ["__meta_kubernetes_pod_name"], "targetLabel": "pod"}
                ],
            }
        ],
    },
}


def tar_members(data: bytes) -> dict[str, bytes]:
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers()}  # type: ignore[union-attr]


def test_the_pause_archive_is_an_oci_image_named_for_containerd(tmp_path: Path) -> None:
    binary = tmp_path / "pause"
    binary.write_bytes(b"\x7fELF not really")
    files = tar_members(pause_image_archive(binary))
    for name, data in files.items():
        if name.startswith("blobs/sha256/"):
            assert hashlib.sha256(data).hexdigest() == name.rsplit("/", 1)[1]
    (manifest_ref,) = json.loads(files["index.json"])["manifests"]
    assert manifest_ref["annotations"]["io.containerd.image.name"] == PAUSE_IMAGE
    manifest = json.loads(files["blobs/sha256/" + manifest_ref["digest"][7:]])
    config = json.loads(files["blobs/sha256/" + manifest["config"]["digest"][7:]])
    assert config["config"] == {"User": "65535:65535", "Entrypoint": ["/pause"]}
    layer = files["blobs/sha256/" + manifest["layers"][0]["digest"][7:]]
    with tarfile.open(fileobj=io.BytesIO(layer)) as tar:
        (pause,) = tar.getmembers()
    assert (pause.name, pause.mode, pause.uid) == ("pause", 0o755, 0)


def test_the_cluster_s_ports_are_reserved_and_stay_reserved() -> None:
    """As the stacks' ports are: in the reserved range (below the ephemeral one), and
    held, so a test worker beside the cluster cannot pick one its programs will bind."""
    ports = free_ports(20)
    assert len(set(ports)) == 20
    low, high = port_range()
    assert all(low <= p <= high for p in ports)
    for port in ports:
        fd = os.open(LOCKS / str(port), os.O_RDWR)
        try:
            with pytest.raises(BlockingIOError):
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        finally:
            os.close(fd)
    first, second = free_ports(2, contiguous=True)
    assert second == first + 1


def test_mounts_under_a_folder_without_any() -> None:
    assert mounts_under(Path("/proc/self")) == []
    assert "/proc" in mounts_under(Path("/proc"))


DISCOVERY = "http://127.0.0.1:1"


def test_monitors_become_discovery_jobs_that_keep_only_their_selection() -> None:
    pods, gateway = scrape_configs([POD_MONITOR, SERVICE_MONITOR], DISCOVERY, "2s")
    assert pods["job_name"] == "podMonitor/rts/streaming-apps/0"
    assert pods["http_sd_configs"] == [
        {"url": f"{DISCOVERY}/pod?namespace=rts", "refresh_interval": "2s"}
    ]
    assert pods["scrape_interval"] == "2s"
    keeps = [r for r in pods["relabel_configs"] if r.get("action") == "keep"]
    assert keeps[0]["source_labels"][0] == "__meta_kubernetes_pod_label_app_kubernetes_io_instance"
    assert keeps[0]["regex"] == "(streaming);true"
    assert keeps[1]["regex"] == "(capture|event\\-sim);true"
    assert keeps[2] == {
        "action": "keep",
        "source_labels": ["__meta_kubernetes_pod_container_port_name"],
        "regex": "ops",
    }
    assert gateway["http_sd_configs"][0]["url"] == f"{DISCOVERY}/endpointslice?namespace=rts"
    targets = {r.get("target_label") for r in gateway["relabel_configs"]}
    assert {"namespace", "pod", "container", "service", "job", "endpoint"} <= targets
    # The monitor's own relabeling comes last, as prometheus-operator puts it.
    assert gateway["relabel_configs"][-1] == {
        "source_labels": ["__meta_kubernetes_pod_name"],
        "target_label": "pod",
    }


def test_what_is_not_translated_is_refused_by_name() -> None:
    monitor = json.loads(json.dumps(POD_MONITOR))
    monitor["spec"]["podMetricsEndpoints"][0]["bearerTokenSecret"] = {"name": "x"}
    with pytest.raises(ClusterError, match="bearerTokenSecret"):
        scrape_configs([monitor], DISCOVERY)


def test_label_names_as_prometheus_discovery_writes_them() -> None:
    assert label_name("app.kubernetes.io/component") == "app_kubernetes_io_component"
    assert label_name("rts/camera") == "rts_camera"


def test_promtool_accepts_the_configuration(tmp_path: Path) -> None:
    config = {"scrape_configs": scrape_configs([POD_MONITOR, SERVICE_MONITOR], DISCOVERY)}
    path = tmp_path / "prometheus.yml"
    path.write_text(yaml.safe_dump(config))
    out = subprocess.run(
        ["promtool", "check", "config", str(path)], capture_output=True, text=True, check=False
    )
    assert out.returncode == 0, out.stdout + out.stderr


POD = {
    "metadata": {
        "name": "streaming-gateway-1",
        "namespace": "rts",
        "uid": "u1",
        "labels": {"app.kubernetes.io/component": "gateway"},
        "ownerReferences": [{"kind": "ReplicaSet", "name": "rs", "controller": True}],
    },
    "spec": {
        "nodeName": "rts-node",
        "containers": [
            {
                "name": "gateway",
                "image": "localhost/rts-gateway:t",
                "ports": [
                    {"name": "http", "containerPort": 8000, "protocol": "TCP"},
                    {"name": "ops", "containerPort": 9130, "protocol": "TCP"},
                ],
            }
        ],
    },
    "status": {
        "podIP": "192.0.2.2",
        "hostIP": "192.0.2.2",
        "phase": "Running",
        "conditions": [{"type": "Ready", "status": "True"}],
    },
}


def test_pods_are_discovered_one_target_per_container_port_with_prometheus_labels() -> None:
    pending = {**POD, "metadata": {**POD["metadata"], "name": "pending"}, "status": {}}
    http, ops = pod_targets([POD, pending])
    assert ops["targets"] == ["192.0.2.2:9130"]
    labels = ops["labels"]
    assert labels["__meta_kubernetes_pod_container_port_name"] == "ops"
    assert labels["__meta_kubernetes_pod_label_app_kubernetes_io_component"] == "gateway"
    assert labels["__meta_kubernetes_pod_labelpresent_app_kubernetes_io_component"] == "true"
    assert labels["__meta_kubernetes_pod_ready"] == "true"
    assert labels["__meta_kubernetes_pod_controller_kind"] == "ReplicaSet"
    assert http["labels"]["__meta_kubernetes_pod_container_port_number"] == "8000"


def test_endpoint_slices_carry_their_service_and_pod() -> None:
    service = {"metadata": {"name": "streaming-gateway", "labels": {"app": "x"}}}
    endpoint_slice = {
        "metadata": {
            "name": "streaming-gateway-abc",
            "namespace": "rts",
            "labels": {"kubernetes.io/service-name": "streaming-gateway"},
        },
        "addressType": "IPv4",
        "endpoints": [
            {
                "addresses": ["192.0.2.2"],
                "conditions": {"ready": True},
                "targetRef": {"kind": "Pod", "name": "streaming-gateway-1"},
            }
        ],
        "ports": [{"name": "ops", "port": 9130, "protocol": "TCP"}],
    }
    (target,) = endpointslice_targets([endpoint_slice], [service], [POD])
    assert target["targets"] == ["192.0.2.2:9130"]
    labels = target["labels"]
    assert labels["__meta_kubernetes_service_name"] == "streaming-gateway"
    assert labels["__meta_kubernetes_service_label_app"] == "x"
    assert labels["__meta_kubernetes_endpointslice_port_name"] == "ops"
    assert labels["__meta_kubernetes_pod_name"] == "streaming-gateway-1"
    assert labels["__meta_kubernetes_pod_container_name"] == "gateway"
    assert labels["__meta_kubernetes_endpointslice_endpoint_conditions_ready"] == "true"
