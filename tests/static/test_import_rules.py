"""The map of the code holds (docs/DESIGN.md, "Map of the code"): services never import
each other, the shared library imports no service; inside the gateway no import cycle,
a feature never reaches into another feature or into the composition root, and in the
video feature the live path and the past meet only in the modules they share and in the
feature object that composes them."""

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


def is_module(dotted: str) -> bool:
    """Whether `dotted` names a module or package of ours (not a name inside one)."""
    top, *rest = dotted.split(".")
    if top not in PACKAGES:
        return False
    path = PACKAGES[top].joinpath(*rest)
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def imports_of(path: Path) -> set[str]:
    """The modules `path` imports; `from p import m` counts as p.m when m is a module."""
    tree = ast.parse(path.read_text(), str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                sub = f"{node.module}.{alias.name}"
                found.add(sub if is_module(sub) else node.module)
    return found


def modules(package: str) -> dict[str, set[str]]:
    """Dotted module name -> the modules it imports, for every module of `package`."""
    base = PACKAGES[package]
    out = {}
    for path in sorted(base.rglob("*.py")):
        parts = path.relative_to(base).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]  # a package is named as it is imported
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


def test_the_gateway_has_no_import_cycle() -> None:
    gateway = modules("rts_gateway")
    graph = {
        module: {name for name in imported if name in gateway and name != module}
        for module, imported in gateway.items()
    }
    cycles: list[list[str]] = []
    done: set[str] = set()

    def visit(module: str, path: list[str]) -> None:
        if module in path:
            cycles.append([*path[path.index(module) :], module])
            return
        if module in done:
            return
        for name in sorted(graph[module]):
            visit(name, [*path, module])
        done.add(module)

    for module in sorted(graph):
        visit(module, [])
    assert cycles == []


VIDEO = "rts_gateway.video"
# The two ways a viewer uses video; each may import the modules video shares
# (rts_gateway.video.<module>) but never the other, nor the feature that composes them.
VIDEO_PATHS = {f"{VIDEO}.live", f"{VIDEO}.past"}
VIDEO_COMPOSITION = {VIDEO, f"{VIDEO}.feature"}


def _video_path(module: str) -> str | None:
    return next((p for p in VIDEO_PATHS if module == p or module.startswith(p + ".")), None)


def test_video_live_path_and_past_meet_only_in_shared_modules_and_the_feature() -> None:
    problems = []
    for module, imported in modules("rts_gateway").items():
        if not module.startswith(VIDEO + ".") or module in VIDEO_COMPOSITION:
            continue
        own = _video_path(module)
        for name in imported:
            if name in VIDEO_COMPOSITION:
                problems.append(f"{module} imports the video feature's composition: {name}")
            target = _video_path(name)
            if target is not None and target != own:
                what = "shared module" if own is None else "path"
                problems.append(f"the {what} {module} imports {name}")
    assert problems == []


def test_the_contracts_are_imported_from_one_place() -> None:
    """`rts_common.contracts` is the import surface; its modules are its own layout."""
    problems = []
    for package in PACKAGES:
        for module, imported in modules(package).items():
            if module.startswith("rts_common.contracts"):
                continue
            problems += [
                f"{module} imports {name}"
                for name in imported
                if name.startswith("rts_common.contracts.")
            ]
    assert problems == []
