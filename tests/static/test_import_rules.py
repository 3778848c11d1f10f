"""The map of the code holds (docs/DESIGN.md, "Map of the code"): services never import
each other, the shared library imports no service, and inside the gateway a feature
never reaches into another feature or into the composition root."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = {
    "rts_common": ROOT / "libs/common/src/rts_common",
    "rts_capture": ROOT / "services/capture/src/rts_capture",
    "rts_eventsim": ROOT / "services/event-sim/src/rts_eventsim",
    "rts_gateway": ROOT / "services/gateway/src/rts_gateway",
    "rts_probe": ROOT / "services/latency-probe/src/rts_probe",
    "rts_notifier": ROOT / "services/notifier/src/rts_notifier",
}
SERVICES = {"rts_capture", "rts_eventsim", "rts_gateway", "rts_probe", "rts_notifier"}
FEATURES = {"video", "feed", "access"}
# What the composition root and the app factory are; nothing else may import them.
COMPOSITION = {"service", "server", "app", "__main__"}


def imports_of(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


def modules(package: str) -> dict[str, set[str]]:
    """Dotted module name -> the modules it imports, for every module of `package`."""
    base = PACKAGES[package]
    out = {}
    for path in sorted(base.rglob("*.py")):
        parts = path.relative_to(base).with_suffix("").parts
        out[".".join((package, *parts))] = imports_of(path)
    return out


@pytest.mark.parametrize("package", sorted(PACKAGES))
def test_services_never_import_each_other_and_the_library_imports_none(package: str) -> None:
    forbidden = SERVICES - {package}
    for module, imported in modules(package).items():
        reached = {name.split(".")[0] for name in imported} & forbidden
        assert not reached, f"{module} imports {sorted(reached)}"


def _part(module: str) -> str:
    """The gateway part a module belongs to: a feature or bridge subpackage, or a top module."""
    return module.split(".")[1] if module.count(".") >= 1 else ""


def test_gateway_features_do_not_reach_into_each_other_or_the_composition_root() -> None:
    problems = []
    for module, imported in modules("rts_gateway").items():
        part = _part(module)
        for name in imported:
            if not name.startswith("rts_gateway."):
                continue
            target = _part(name)
            if part in FEATURES and target in FEATURES and target != part:
                problems.append(f"{module} imports another feature: {name}")
            if part not in COMPOSITION and target in COMPOSITION:
                problems.append(f"{module} imports the composition root: {name}")
            if part == "bridge" and target not in {"bridge", "metrics"}:
                problems.append(f"the Kafka bridge depends on the app: {module} imports {name}")
    assert problems == []
