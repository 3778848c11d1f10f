"""The container images, checked without a container engine.

hadolint lints every Dockerfile; each image's install step (docker/install-service.sh,
the very script the Dockerfile runs) installs into a fresh virtual environment, and the
service imports and answers --help there with only its own dependencies.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.static.chart import ROOT

DOCKER = ROOT / "docker"
UV = ROOT / ".cache" / "tools" / "bin" / "uv"

# service → (package=source dir of each package, console scripts (the entry point first),
# modules it must not carry)
IMAGES = {
    "capture": (("rts-capture=services/capture",), ("capture",), ()),
    # The notifier runs from event-sim's image (the same dependencies, and paho-mqtt).
    "event-sim": (
        ("rts-eventsim=services/event-sim", "rts-notifier=services/notifier"),
        ("event-sim", "notifier"),
        ("cv2", "numpy", "flask"),
    ),
    # The latency probe runs from the gateway's image (it signs in with the gateway's code).
    "gateway": (
        ("rts-gateway=services/gateway", "rts-probe=services/latency-probe"),
        ("gateway", "latency-probe"),
        ("cv2", "numpy"),
    ),
}


def dockerfile(service: str) -> str:
    return (DOCKER / f"{service}.Dockerfile").read_text()


def test_hadolint_passes_on_every_dockerfile() -> None:
    files = sorted(DOCKER.glob("*.Dockerfile"))
    assert {f.name for f in files} == {f"{s}.Dockerfile" for s in IMAGES}
    hadolint = Path(sys.executable).parent / "hadolint"
    out = subprocess.run(
        [str(hadolint), "--failure-threshold", "info", *map(str, files)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.returncode == 0, out.stdout + out.stderr


def test_hadolint_catches_a_bad_dockerfile(tmp_path: Path) -> None:
    bad = tmp_path / "bad.Dockerfile"
    bad.write_text("FROM python:latest\nRUN pip install flask\n")
    hadolint = Path(sys.executable).parent / "hadolint"
    out = subprocess.run([str(hadolint), str(bad)], capture_output=True, text=True, check=False)
    assert out.returncode != 0
    assert "DL3007" in out.stdout  # latest tag


@pytest.mark.parametrize("service", IMAGES)
def test_dockerfile_follows_the_house_rules(service: str) -> None:
    text = dockerfile(service)
    defaults = dict(re.findall(r"^ARG (\w+)=(\S+)$", text, flags=re.M))
    bases = [
        re.sub(r"\$\{(\w+)\}", lambda m: defaults[m.group(1)], base)
        for base in re.findall(r"^FROM (\S+)", text, flags=re.M)
    ]
    assert len(bases) >= 2, "multi-stage"
    for base in bases:
        # An exact version (or a digest), never a moving tag.
        assert re.search(r":\d+\.\d+\.\d+-|@sha256:", base), base
    assert "PYTHONUNBUFFERED=1" in text
    assert "HEALTHCHECK" not in text  # Kubernetes probes do that
    (user,) = re.findall(r"^USER (\S+)", text, flags=re.M)
    assert user == "10001:10001"
    packages, scripts, _ = IMAGES[service]
    lines = text.replace("\\\n", " ")  # continuation lines joined
    install = re.search(r"^RUN sh docker/install-service.sh /opt/venv (.*)$", lines, re.M)
    assert install, "the install step"
    assert install.group(1).split() == list(packages)
    assert f'ENTRYPOINT ["{scripts[0]}"]' in text


def test_chart_runs_the_images_as_their_user() -> None:
    values = yaml.safe_load((ROOT / "helm/streaming/values.yaml").read_text())
    assert values["podSecurityContext"]["runAsUser"] == 10001
    assert values["podSecurityContext"]["runAsGroup"] == 10001


def test_gateway_image_builds_the_dashboard_bundle() -> None:
    text = dockerfile("gateway")
    assert re.search(r"^ARG NODE_IMAGE=node:\S+$", text, flags=re.M)
    assert re.search(r"^FROM \$\{NODE_IMAGE\} AS frontend$", text, flags=re.M)
    assert "RUN npm ci" in text
    assert "RUN npm run build" in text
    assert "COPY --from=frontend" in text


def test_dockerignore_sends_what_the_dockerfiles_copy() -> None:
    patterns = (ROOT / ".dockerignore").read_text().splitlines()
    included = {p[1:].rstrip("/") for p in patterns if p.startswith("!")}
    for service in IMAGES:
        for source in re.findall(r"^COPY (?!--from)(.+) \S+$", dockerfile(service), flags=re.M):
            for path in source.split():
                assert any(path.rstrip("/") == i or path.startswith(i + "/") for i in included), (
                    path
                )
                assert (ROOT / path).exists(), path


@pytest.mark.parametrize("service", IMAGES)
def test_image_install_step_works_in_a_fresh_venv(service: str, tmp_path: Path) -> None:
    packages, scripts, absent = IMAGES[service]
    venv = tmp_path / "venv"
    env = {
        **os.environ,
        "PATH": f"{UV.parent}{os.pathsep}{os.environ['PATH']}",
        "PYTHON": sys.executable,
        "UV_PYTHON_DOWNLOADS": "never",
    }
    install = subprocess.run(
        ["sh", "docker/install-service.sh", str(venv), *packages],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert install.returncode == 0, install.stderr
    python = venv / "bin" / "python"
    for script in scripts:
        help_ = subprocess.run(
            [str(venv / "bin" / script), "--help"], capture_output=True, text=True, check=False
        )
        assert help_.returncode == 0, help_.stderr
        assert "LOG_LEVEL" in help_.stdout
    modules = [item.split("=")[0].replace("-", "_") for item in packages]
    imported = subprocess.run(
        [str(python), "-c", f"import {', '.join(m + '.__main__' for m in modules)}, rts_common"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert imported.returncode == 0, imported.stderr
    for name in absent:
        probe = subprocess.run(
            [str(python), "-c", f"import {name}"], capture_output=True, check=False
        )
        assert probe.returncode != 0, f"{name} is installed in the {service} image"
    # No development tools and no other service in the image.
    listed = subprocess.run(
        [str(UV), "pip", "list", "--python", str(python), "--format", "freeze"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    installed = {line.split("==")[0].lower() for line in listed.splitlines() if line}
    others = {
        item.split("=")[0] for s, (items, *_) in IMAGES.items() if s != service for item in items
    }
    assert not installed & (others | {"pytest", "ruff", "mypy", "rts-devstack", "hatchling"})
    if service == "capture":
        assert "opencv-python-headless" in installed
