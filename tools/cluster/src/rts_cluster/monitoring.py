"""Prometheus's scrape configuration from the ServiceMonitors and PodMonitors in a cluster,
as prometheus-operator writes it, for a Prometheus that runs outside the cluster.

Each monitor becomes a job whose targets come from the API server (rts_cluster.discovery,
the same `__meta_kubernetes_*` labels as Prometheus's own Kubernetes discovery): a
PodMonitor discovers pods, a ServiceMonitor the endpoint slices of the Services it
selects; the monitor's label selector, port name, path, interval and relabelings become
relabel rules, and every target carries `namespace`, `pod`, `container`, `job` and
`endpoint` as prometheus-operator sets them. Only what the chart's monitors use is
translated (matchLabels, matchExpressions, namespaceSelector, port, path, interval,
relabelings); anything else is refused by name rather than ignored.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from rts_cluster.kube import ClusterError

KNOWN_ENDPOINT_FIELDS = {"port", "path", "interval", "relabelings", "scheme", "scrapeTimeout"}
KNOWN_SPEC_FIELDS = {
    "selector",
    "namespaceSelector",
    "podMetricsEndpoints",
    "endpoints",
    "jobLabel",
}


def label_name(label: str) -> str:
    """A Kubernetes label as Prometheus's discovery names it (`app.kubernetes.io/name` ->
    `app_kubernetes_io_name`)."""
    return re.sub(r"[^a-zA-Z0-9_]", "_", label)


def _selector_rules(selector: Mapping[str, Any], role: str) -> list[dict[str, Any]]:
    """keep rules for a label selector on pods or services."""
    rules = []

    def keep(key: str, regex: str) -> dict[str, Any]:
        name = label_name(key)
        return {
            "action": "keep",
            "source_labels": [
                f"__meta_kubernetes_{role}_label_{name}",
                f"__meta_kubernetes_{role}_labelpresent_{name}",
            ],
            "regex": regex,
        }

    for key, value in sorted((selector.get("matchLabels") or {}).items()):
        rules.append(keep(key, f"({re.escape(value)});true"))
    for expression in selector.get("matchExpressions") or []:
        key, operator = expression["key"], expression["operator"]
        values = "|".join(re.escape(v) for v in expression.get("values") or [])
        if operator == "In":
            rules.append(keep(key, f"({values});true"))
        elif operator == "NotIn":
            rule = keep(key, f"({values});true")
            rules.append({**rule, "action": "drop"})
        elif operator == "Exists":
            rules.append(keep(key, ".*;true"))
        elif operator == "DoesNotExist":
            rules.append({**keep(key, ".*;true"), "action": "drop"})
        else:
            raise ClusterError(f"selector operator {operator} is not translated")
    return rules


def _relabelings(relabelings: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    names = {
        "sourceLabels": "source_labels",
        "targetLabel": "target_label",
        "separator": "separator",
        "regex": "regex",
        "replacement": "replacement",
        "modulus": "modulus",
        "action": "action",
    }
    out = []
    for relabeling in relabelings:
        unknown = set(relabeling) - set(names)
        if unknown:
            raise ClusterError(f"relabeling fields not translated: {sorted(unknown)}")
        rule = {names[k]: v for k, v in relabeling.items()}
        if "action" in rule:
            rule["action"] = str(rule["action"]).lower()
        out.append(rule)
    return out


def _namespaces(monitor: Mapping[str, Any]) -> list[str]:
    """The namespaces a monitor watches."""
    selector = monitor["spec"].get("namespaceSelector") or {}
    if selector.get("any"):
        raise ClusterError(
            f"{monitor['metadata']['name']}: namespaceSelector.any is not translated"
        )
    return list(selector.get("matchNames") or [monitor["metadata"]["namespace"]])


def _discovery(role: str, namespaces: list[str], discovery: str, refresh: str) -> list[Any]:
    return [
        {"url": f"{discovery}/{role}?namespace={namespace}", "refresh_interval": refresh}
        for namespace in namespaces
    ]


def _check_fields(monitor: Mapping[str, Any], endpoints: Iterable[Mapping[str, Any]]) -> None:
    name = f"{monitor['kind']} {monitor['metadata']['name']}"
    unknown = set(monitor["spec"]) - KNOWN_SPEC_FIELDS
    for endpoint in endpoints:
        unknown |= set(endpoint) - KNOWN_ENDPOINT_FIELDS
    if unknown:
        raise ClusterError(f"{name}: fields not translated: {sorted(unknown)}")


def _job(
    monitor: Mapping[str, Any],
    index: int,
    endpoint: Mapping[str, Any],
    discovery: list[Any],
    rules: list[dict[str, Any]],
) -> dict[str, Any]:
    kind = "podMonitor" if monitor["kind"] == "PodMonitor" else "serviceMonitor"
    meta = monitor["metadata"]
    job: dict[str, Any] = {
        "job_name": f"{kind}/{meta['namespace']}/{meta['name']}/{index}",
        "http_sd_configs": discovery,
        "metrics_path": endpoint.get("path", "/metrics"),
        "scheme": endpoint.get("scheme", "http"),
        "relabel_configs": rules + _relabelings(endpoint.get("relabelings") or []),
    }
    if "interval" in endpoint:
        job["scrape_interval"] = endpoint["interval"]
    if "scrapeTimeout" in endpoint:
        job["scrape_timeout"] = endpoint["scrapeTimeout"]
    return job


def pod_monitor_jobs(
    monitor: Mapping[str, Any], discovery_url: str, refresh: str
) -> list[dict[str, Any]]:
    endpoints = monitor["spec"].get("podMetricsEndpoints") or []
    _check_fields(monitor, endpoints)
    meta = monitor["metadata"]
    jobs = []
    for index, endpoint in enumerate(endpoints):
        job_label = monitor["spec"].get("jobLabel")
        rules = [
            *_selector_rules(monitor["spec"].get("selector") or {}, "pod"),
            {
                "action": "drop",
                "source_labels": ["__meta_kubernetes_pod_phase"],
                "regex": "(Failed|Succeeded)",
            },
            {
                "action": "keep",
                "source_labels": ["__meta_kubernetes_pod_container_port_name"],
                "regex": re.escape(endpoint["port"]),
            },
            *_target_labels("pod"),
            {"target_label": "job", "replacement": f"{meta['namespace']}/{meta['name']}"},
        ]
        if job_label:
            rules.append(
                {
                    "source_labels": [f"__meta_kubernetes_pod_label_{label_name(job_label)}"],
                    "regex": "(.+)",
                    "target_label": "job",
                    "replacement": "${1}",
                }
            )
        rules.append({"target_label": "endpoint", "replacement": endpoint["port"]})
        discovery = _discovery("pod", _namespaces(monitor), discovery_url, refresh)
        jobs.append(_job(monitor, index, endpoint, discovery, rules))
    return jobs


def service_monitor_jobs(
    monitor: Mapping[str, Any], discovery_url: str, refresh: str
) -> list[dict[str, Any]]:
    endpoints = monitor["spec"].get("endpoints") or []
    _check_fields(monitor, endpoints)
    jobs = []
    for index, endpoint in enumerate(endpoints):
        job_label = monitor["spec"].get("jobLabel")
        job_source = (
            f"__meta_kubernetes_service_label_{label_name(job_label)}"
            if job_label
            else "__meta_kubernetes_service_name"
        )
        rules = [
            *_selector_rules(monitor["spec"].get("selector") or {}, "service"),
            {
                "action": "keep",
                "source_labels": ["__meta_kubernetes_endpointslice_port_name"],
                "regex": re.escape(endpoint["port"]),
            },
            {
                "action": "drop",
                "source_labels": ["__meta_kubernetes_pod_phase"],
                "regex": "(Failed|Succeeded)",
            },
            *_target_labels("endpointslice"),
            {"source_labels": ["__meta_kubernetes_service_name"], "target_label": "service"},
            {"source_labels": [job_source], "target_label": "job", "replacement": "${1}"},
            {"target_label": "endpoint", "replacement": endpoint["port"]},
        ]
        discovery = _discovery("endpointslice", _namespaces(monitor), discovery_url, refresh)
        jobs.append(_job(monitor, index, endpoint, discovery, rules))
    return jobs


def _target_labels(role: str) -> list[dict[str, Any]]:
    rules: list[dict[str, Any]] = [
        {"source_labels": ["__meta_kubernetes_namespace"], "target_label": "namespace"},
        {"source_labels": ["__meta_kubernetes_pod_name"], "target_label": "pod"},
        {"source_labels": ["__meta_kubernetes_pod_container_name"], "target_label": "container"},
    ]
    if role == "endpointslice":
        rules.insert(
            0,
            {
                "source_labels": [
                    "__meta_kubernetes_endpointslice_address_target_kind",
                    "__meta_kubernetes_endpointslice_address_target_name",
                ],
                "separator": ";",
                "regex": "Node;(.*)",
                "target_label": "node",
                "replacement": "${1}",
            },
        )
    return rules


def scrape_configs(
    monitors: Iterable[Mapping[str, Any]], discovery_url: str, refresh: str = "5s"
) -> list[dict[str, Any]]:
    """One job per monitor endpoint, in the monitors' order; targets from `discovery_url`
    (rts_cluster.discovery), asked again every `refresh`."""
    jobs = []
    for monitor in monitors:
        if monitor["kind"] == "PodMonitor":
            jobs += pod_monitor_jobs(monitor, discovery_url, refresh)
        elif monitor["kind"] == "ServiceMonitor":
            jobs += service_monitor_jobs(monitor, discovery_url, refresh)
        else:
            raise ClusterError(f"not a monitor: {monitor['kind']}")
    return jobs
