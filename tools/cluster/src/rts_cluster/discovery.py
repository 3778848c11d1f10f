"""Kubernetes service discovery for Debian's Prometheus, over its HTTP discovery.

Debian builds Prometheus without `kubernetes_sd_configs` (its packaging removed the
Kubernetes client's dependencies, NEWS.Debian of 1.5.0), so this lists what Prometheus's
own Kubernetes discovery would (pods, and endpoint slices with their Services and pods)
from the API server and serves it on the `http_sd_configs` protocol, with the same
`__meta_kubernetes_*` labels. The relabeling of each job is then prometheus-operator's
(rts_cluster.monitoring), unchanged.

    GET /pod?namespace=rts            one target per container port of each pod with an IP
    GET /endpointslice?namespace=rts  one target per port of each endpoint of each slice
"""

from __future__ import annotations

import json
import ssl
import threading
import urllib.parse
import urllib.request
from collections.abc import Iterable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import yaml
from rts_cluster.kube import ClusterError
from rts_cluster.monitoring import label_name

Target = dict[str, Any]
PREFIX = "__meta_kubernetes_"


class ApiServer:
    """GETs against the API server as the user of a kubeconfig (token and CA)."""

    def __init__(self, kubeconfig: Path) -> None:
        config = yaml.safe_load(kubeconfig.read_text())
        context = next(
            c["context"] for c in config["contexts"] if c["name"] == config["current-context"]
        )
        cluster = next(c["cluster"] for c in config["clusters"] if c["name"] == context["cluster"])
        user = next(u["user"] for u in config["users"] if u["name"] == context["user"])
        self.server = cluster["server"].rstrip("/")
        self.token = user["token"]
        self.context = ssl.create_default_context(cafile=cluster["certificate-authority"])

    def get(self, path: str) -> Any:
        request = urllib.request.Request(  # noqa: S310 - the kubeconfig's https server
            self.server + path, headers={"Authorization": f"Bearer {self.token}"}
        )
        try:
            with urllib.request.urlopen(request, timeout=10, context=self.context) as response:  # noqa: S310
                return json.load(response)
        except OSError as exc:
            raise ClusterError(f"GET {path}: {exc}") from exc

    def items(self, group: str, resource: str, namespace: str) -> list[dict[str, Any]]:
        base = "/api/v1" if group == "" else f"/apis/{group}"
        return list(self.get(f"{base}/namespaces/{namespace}/{resource}")["items"])


def _labels(kind: str, metadata: Mapping[str, Any]) -> dict[str, str]:
    out = {}
    for key, value in (metadata.get("labels") or {}).items():
        out[f"{PREFIX}{kind}_label_{label_name(key)}"] = value
        out[f"{PREFIX}{kind}_labelpresent_{label_name(key)}"] = "true"
    for key, value in (metadata.get("annotations") or {}).items():
        out[f"{PREFIX}{kind}_annotation_{label_name(key)}"] = value
        out[f"{PREFIX}{kind}_annotationpresent_{label_name(key)}"] = "true"
    return out


def pod_labels(pod: Mapping[str, Any]) -> dict[str, str]:
    """What Prometheus's pod discovery says of a pod (without its container)."""
    meta, spec, status = pod["metadata"], pod["spec"], pod.get("status", {})
    conditions = {c["type"]: c["status"] for c in status.get("conditions") or []}
    labels = {
        f"{PREFIX}namespace": meta["namespace"],
        f"{PREFIX}pod_name": meta["name"],
        f"{PREFIX}pod_ip": status.get("podIP", ""),
        f"{PREFIX}pod_ready": conditions.get("Ready", "unknown").lower(),
        f"{PREFIX}pod_phase": status.get("phase", ""),
        f"{PREFIX}pod_node_name": spec.get("nodeName", ""),
        f"{PREFIX}pod_host_ip": status.get("hostIP", ""),
        f"{PREFIX}pod_uid": meta.get("uid", ""),
        **_labels("pod", meta),
    }
    for owner in meta.get("ownerReferences") or []:
        if owner.get("controller"):
            labels[f"{PREFIX}pod_controller_kind"] = owner["kind"]
            labels[f"{PREFIX}pod_controller_name"] = owner["name"]
    return labels


def _container_port_labels(container: Mapping[str, Any], port: Mapping[str, Any]) -> dict[str, str]:
    return {
        f"{PREFIX}pod_container_name": container["name"],
        f"{PREFIX}pod_container_image": container.get("image", ""),
        f"{PREFIX}pod_container_port_name": port.get("name", ""),
        f"{PREFIX}pod_container_port_number": str(port["containerPort"]),
        f"{PREFIX}pod_container_port_protocol": port.get("protocol", "TCP"),
        f"{PREFIX}pod_container_init": "false",
    }


def pod_targets(pods: Iterable[Mapping[str, Any]]) -> list[Target]:
    groups = []
    for pod in pods:
        ip = pod.get("status", {}).get("podIP")
        if not ip:
            continue
        common = pod_labels(pod)
        for container in pod["spec"]["containers"]:
            for port in container.get("ports") or []:
                groups.append(
                    {
                        "targets": [f"{ip}:{port['containerPort']}"],
                        "labels": {**common, **_container_port_labels(container, port)},
                    }
                )
    return groups


def endpointslice_targets(
    slices: Iterable[Mapping[str, Any]],
    services: Iterable[Mapping[str, Any]],
    pods: Iterable[Mapping[str, Any]],
) -> list[Target]:
    by_service = {s["metadata"]["name"]: s for s in services}
    by_pod = {p["metadata"]["name"]: p for p in pods}
    groups = []
    for endpoint_slice in slices:
        meta = endpoint_slice["metadata"]
        service_name = (meta.get("labels") or {}).get("kubernetes.io/service-name", "")
        common = {
            f"{PREFIX}namespace": meta["namespace"],
            f"{PREFIX}endpointslice_name": meta["name"],
            f"{PREFIX}endpointslice_address_type": endpoint_slice.get("addressType", ""),
        }
        service = by_service.get(service_name)
        if service is not None:
            common[f"{PREFIX}service_name"] = service_name
            common.update(_labels("service", service["metadata"]))
        for endpoint in endpoint_slice.get("endpoints") or []:
            target = endpoint.get("targetRef") or {}
            conditions = endpoint.get("conditions") or {}
            about = {
                f"{PREFIX}endpointslice_endpoint_conditions_ready": str(
                    conditions.get("ready", False)
                ).lower(),
                f"{PREFIX}endpointslice_address_target_kind": target.get("kind", ""),
                f"{PREFIX}endpointslice_address_target_name": target.get("name", ""),
            }
            pod = by_pod.get(target.get("name", "")) if target.get("kind") == "Pod" else None
            if pod is not None:
                about.update(pod_labels(pod))
            for port in endpoint_slice.get("ports") or []:
                labels = {
                    **common,
                    **about,
                    f"{PREFIX}endpointslice_port_name": port.get("name", ""),
                    f"{PREFIX}endpointslice_port": str(port.get("port", "")),
                    f"{PREFIX}endpointslice_port_protocol": port.get("protocol", "TCP"),
                }
                if pod is not None:
                    labels.update(_matching_container(pod, port.get("port")))
                for address in endpoint.get("addresses") or []:
                    groups.append({"targets": [f"{address}:{port.get('port')}"], "labels": labels})
    return groups


def _matching_container(pod: Mapping[str, Any], number: object) -> dict[str, str]:
    for container in pod["spec"]["containers"]:
        for port in container.get("ports") or []:
            if port["containerPort"] == number:
                return _container_port_labels(container, port)
    return {}


class Discovery:
    """The HTTP discovery endpoint, on a loopback port it binds itself (`url`)."""

    def __init__(self, api: ApiServer) -> None:
        self.api = api
        self.errors = 0
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def targets(self, role: str, namespace: str) -> list[Target]:
        pods = self.api.items("", "pods", namespace)
        if role == "pod":
            return pod_targets(pods)
        if role == "endpointslice":
            return endpointslice_targets(
                self.api.items("discovery.k8s.io/v1", "endpointslices", namespace),
                self.api.items("", "services", namespace),
                pods,
            )
        raise ClusterError(f"no discovery of role {role}")

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        discovery = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                url = urllib.parse.urlsplit(self.path)
                namespace = urllib.parse.parse_qs(url.query).get("namespace", ["default"])[0]
                try:
                    body = json.dumps(discovery.targets(url.path.strip("/"), namespace)).encode()
                    status = 200
                except ClusterError as exc:
                    # Prometheus keeps the last targets it had when discovery fails.
                    discovery.errors += 1
                    body, status = str(exc).encode(), 503
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return Handler

    def start(self) -> Discovery:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
