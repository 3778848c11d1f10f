"""Render the Helm chart and validate what it renders, without a cluster.

Core kinds are checked against Kubernetes' own OpenAPI schemas (the kubernetes-validate
package, strict: unknown fields are errors, as `kubectl apply` makes them); Strimzi, KEDA
and prometheus-operator kinds against their CRDs' openAPIV3Schema (tests/static/crds),
made strict the same way.
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "helm" / "streaming"
HERE = Path(__file__).resolve().parent
VALUES = HERE / "values"
CRDS = HERE / "crds"
STAND_INS = HERE / "fixtures" / "chart-files"
# The Kubernetes version objects are validated against: the one k8s/versions.mk pins
# for kind's node image.
KUBERNETES_VERSION = "1.35"
RELEASE = "streaming"
NAMESPACE = "rts"

VALUE_SETS = ("default", "minimal", "production", "external")

Obj = dict[str, Any]


def helm() -> str:
    """The pinned helm binary (`make helm` builds it into .cache/tools)."""
    explicit = os.environ.get("HELM")
    if explicit:
        return explicit
    found = sorted(ROOT.glob(".cache/tools/helm-*/helm"))
    if not found:
        raise RuntimeError("helm is not installed: run `make helm` (it builds the pinned version)")
    return str(found[-1])


def prepare_chart(target: Path) -> Path:
    """A copy of the chart in which the observability files exist.

    The dashboards, alert rules and Kafka metrics rules are written into the chart by
    another part of the project; where the chart has none yet, small stand-ins from the
    test fixtures take their place so every template renders. Real files always win.
    """
    chart = target / "streaming"
    shutil.copytree(CHART, chart)
    files = chart / "files"
    if not list(files.glob("dashboards/*.json")):
        shutil.copytree(STAND_INS / "dashboards", files / "dashboards", dirs_exist_ok=True)
    if not list(files.glob("alerts/*.yaml")):
        shutil.copytree(STAND_INS / "alerts", files / "alerts", dirs_exist_ok=True)
    if not (files / "kafka-metrics.yaml").exists():
        shutil.copy(STAND_INS / "kafka-metrics.yaml", files / "kafka-metrics.yaml")
    return chart


def values_args(value_set: str) -> list[str]:
    if value_set == "default":
        return []
    return ["--values", str(VALUES / f"{value_set}.yaml")]


def served_kinds() -> list[str]:
    """`--api-versions` arguments naming every CRD kind in tests/static/crds.

    The chart renders a custom resource only when the API server serves its kind; offline,
    helm knows none unless told, as a cluster with the operators installed would tell it.
    """
    args = []
    for api_version, kind in sorted(crd_schemas()):
        args += ["--api-versions", f"{api_version}/{kind}"]
    return args


def render(chart: Path, *args: str, crds: bool = True) -> list[Obj]:
    """`helm template` with the given arguments, the hook (test) Pod included; with `crds`,
    as for a cluster that has the operators' CRDs."""
    served = served_kinds() if crds else []
    out = subprocess.run(
        [helm(), "template", RELEASE, str(chart), "--namespace", NAMESPACE, *served, *args],
        capture_output=True,
        text=True,
        check=False,
    )
    if out.returncode != 0:
        raise RenderError(out.stderr.strip())
    return [doc for doc in yaml.safe_load_all(out.stdout) if doc]


class RenderError(Exception):
    pass


# ---------------------------------------------------------------------------------------
# Validation


@dataclass(frozen=True)
class Problem:
    kind: str
    name: str
    where: str
    message: str

    def __str__(self) -> str:
        return f"{self.kind}/{self.name}: {self.where}: {self.message}"


DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
# Kinds whose names become DNS labels (Services: host names; Deployments: pod names).
LABEL_NAMED = {"Service", "Kafka", "KafkaNodePool"}


def validate(obj: Obj) -> list[Problem]:
    """Every problem the API server's schema validation would report for this object."""
    kind = obj.get("kind", "?")
    name = obj.get("metadata", {}).get("name", "?")
    problems = []
    crd = crd_schemas().get((obj.get("apiVersion", ""), kind))
    if crd is not None:
        for error in jsonschema.Draft7Validator(crd).iter_errors(obj):
            where = "/".join(str(p) for p in error.absolute_path)
            problems.append(Problem(kind, name, where, error.message))
        # A custom resource's metadata is ObjectMeta like any other's.
        shell = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": obj.get("metadata", {})}
        problems += _core(shell, kind, name)
    else:
        problems += _core(obj, kind, name)
    pattern = DNS_LABEL if kind in LABEL_NAMED else DNS_SUBDOMAIN
    limit = 63 if kind in LABEL_NAMED else 253
    if not (isinstance(name, str) and pattern.match(name) and len(name) <= limit):
        problems.append(Problem(kind, str(name), "metadata/name", "not a valid DNS name"))
    return problems


def _core(obj: Obj, kind: str, name: str) -> list[Problem]:
    try:
        kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
    except kubernetes_validate.ValidationError as error:
        where = "/".join(str(p) for p in error.path)
        return [Problem(kind, name, where, error.message)]
    except kubernetes_validate.SchemaNotFoundError as error:
        return [Problem(kind, name, "apiVersion", error.message)]
    return []


@functools.cache
def crd_schemas() -> dict[tuple[str, str], Obj]:
    """(apiVersion, kind) → the strict JSON schema of every served version of each CRD."""
    schemas: dict[tuple[str, str], Obj] = {}
    for path in sorted(CRDS.glob("*/*.yaml")):
        for crd in yaml.safe_load_all(path.read_text()):
            if not crd or crd.get("kind") != "CustomResourceDefinition":
                continue
            group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
            for version in crd["spec"]["versions"]:
                if version.get("served"):
                    schema = strict(version["schema"]["openAPIV3Schema"])
                    schemas[(f"{group}/{version['name']}", kind)] = schema
    return schemas


def strict(schema: Any) -> Any:
    """The schema with unknown fields forbidden wherever the CRD lists the fields.

    The API server prunes unknown fields of a structural schema and `kubectl apply`
    (strict field validation) refuses them; JSON Schema would let them pass silently.
    """
    if isinstance(schema, list):
        return [strict(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out = {key: strict(value) for key, value in schema.items()}
    if (
        "properties" in out
        and "additionalProperties" not in out
        and not out.get("x-kubernetes-preserve-unknown-fields")
    ):
        out["additionalProperties"] = False
    return out


# ---------------------------------------------------------------------------------------
# Queries over rendered objects


def of_kind(objects: Iterable[Obj], kind: str) -> list[Obj]:
    return [obj for obj in objects if obj["kind"] == kind]


def named(objects: Iterable[Obj], kind: str, name: str) -> Obj:
    for obj in of_kind(objects, kind):
        if obj["metadata"]["name"] == name:
            return obj
    raise KeyError(f"{kind}/{name}")


def pod_specs(objects: Iterable[Obj]) -> Iterator[tuple[Obj, Obj]]:
    """(owner, pod spec) of every Deployment and bare Pod."""
    for obj in objects:
        if obj["kind"] == "Deployment":
            yield obj, obj["spec"]["template"]["spec"]
        elif obj["kind"] == "Pod":
            yield obj, obj["spec"]


def pod_labels(obj: Obj) -> dict[str, str]:
    if obj["kind"] == "Deployment":
        return dict(obj["spec"]["template"]["metadata"]["labels"])
    return dict(obj["metadata"].get("labels", {}))


def matches(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    """Does a label selector (matchLabels/matchExpressions or a plain map) select labels?"""
    plain = {k: v for k, v in selector.items() if k not in ("matchLabels", "matchExpressions")}
    wanted = {**plain, **selector.get("matchLabels", {})}
    if any(labels.get(key) != value for key, value in wanted.items()):
        return False
    for expression in selector.get("matchExpressions", []):
        value, operator = labels.get(expression["key"]), expression["operator"]
        if operator == "In" and value not in expression["values"]:
            return False
        if operator == "NotIn" and value in expression["values"]:
            return False
        if operator == "Exists" and value is None:
            return False
        if operator == "DoesNotExist" and value is not None:
            return False
    return True


def env_of(container: Obj) -> dict[str, Any]:
    """A container's environment: name → value, or the valueFrom source."""
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container.get("env", [])}
