"""The three images, built and run with a real container engine (`make images-test`).

Debian's podman, as root, with runc and cgroupfs (no systemd here) and the host's
network. The Dockerfiles' base images come from Docker Hub, which this test does not
need: it builds stand-ins from Debian packages (mmdebstrap, then `podman import`) and
passes them as the PYTHON_IMAGE and NODE_IMAGE build arguments. The stand-ins carry
Debian's Python 3.11 and Node.js, which is what the official images carry in their own
build, so every step of the Dockerfiles runs as written; the default bases stay the
pinned official ones.

Each image then runs read-only as uid 10001 and answers --help, and the gateway's
image serves /readyz against the session's real broker.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from rts_common.contracts import TOPICS

from tests.fixtures.kafka import KafkaUnderTest
from tests.fixtures.processes import ServiceGroup

# The first test builds the stand-in bases and the three images (its setup counts).
pytestmark = pytest.mark.timeout(3600)

ROOT = Path(__file__).resolve().parents[2]
CACHE = ROOT / ".cache" / "images"
SUITE = "bookworm"
STANDINS = {
    # name -> Debian packages
    "python": ["python3", "python3-venv", "python3-pip", "ca-certificates"],
    "node": ["nodejs", "npm", "ca-certificates"],
}
SERVICES = {"capture": "capture", "event-sim": "event-sim", "gateway": "gateway"}
TAG = "images-test"
# The sandbox's own limits: podman's defaults ask for more than an unprivileged root may.
ULIMITS = ["--ulimit", "nofile=20000:20000", "--ulimit", "nproc=4096:4096"]


def podman(
    *args: str, timeout: float = 1800, check: bool = True
) -> subprocess.CompletedProcess[str]:
    out = subprocess.run(
        ["podman", "--runtime", "runc", "--cgroup-manager", "cgroupfs", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if check and out.returncode != 0:
        raise AssertionError(
            f"podman {' '.join(args)}:\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}"
        )
    return out


LOCAL_CAS = Path("/usr/local/share/ca-certificates")


def standin(name: str, workdir: Path) -> str:
    """localhost/rts-standin/<name>:<suite>, made once from Debian packages.

    It trusts what this machine trusts: the certificate authorities added locally (a
    proxy's, say) are copied in, and pip, uv and npm are pointed at the system store,
    as the official images' users do behind such a proxy.
    """
    image = f"localhost/rts-standin/{name}:{SUITE}"
    if podman("image", "exists", image, check=False).returncode == 0:
        return image
    CACHE.mkdir(parents=True, exist_ok=True)
    tarball = CACHE / f"standin-{name}-{SUITE}.tar"
    if not tarball.exists():
        # mmdebstrap picks the output's format by its extension.
        partial = tarball.with_name(tarball.stem + ".partial.tar")
        subprocess.run(
            [
                "mmdebstrap",
                "--variant=minbase",
                "--include=" + ",".join(STANDINS[name]),
                # Like the official python image: pip may install into the system Python.
                "--customize-hook",
                'rm -f "$1"/usr/lib/python3*/EXTERNALLY-MANAGED',
                "--customize-hook",
                'rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*',
                SUITE,
                str(partial),
            ],
            check=True,
            capture_output=True,
            timeout=1200,
        )
        partial.rename(tarball)
    base = f"{image}-debian"
    podman("import", str(tarball), base)
    context = workdir / f"standin-{name}"
    (context / "ca").mkdir(parents=True)
    for ca in LOCAL_CAS.glob("*.crt") if LOCAL_CAS.is_dir() else []:
        shutil.copy(ca, context / "ca" / ca.name)
    bundle = "/etc/ssl/certs/ca-certificates.crt"
    (context / "Containerfile").write_text(
        f"FROM {base}\n"
        "COPY ca/ /usr/local/share/ca-certificates/\n"
        "RUN update-ca-certificates\n"
        f"ENV SSL_CERT_FILE={bundle} PIP_CERT={bundle} NODE_EXTRA_CA_CERTS={bundle}\n"
    )
    podman("build", "--network", "host", *ULIMITS, "-t", image, str(context))
    return image


@pytest.fixture(scope="session")
def images(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    for tool in ("podman", "runc", "mmdebstrap"):
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} is missing: apt-get install podman runc mmdebstrap", pytrace=False)
    workdir = tmp_path_factory.mktemp("standins")
    python, node = standin("python", workdir), standin("node", workdir)
    built = {}
    for service in SERVICES:
        tag = f"localhost/rts-{service}:{TAG}"
        podman(
            "build",
            "--network",
            "host",
            *ULIMITS,
            "--build-arg",
            f"PYTHON_IMAGE={python}",
            "--build-arg",
            f"NODE_IMAGE={node}",
            "-f",
            f"docker/{service}.Dockerfile",
            "-t",
            tag,
            str(ROOT),
        )
        built[service] = tag
    return built


def run(image: str, *args: str, entrypoint: str | None = None) -> subprocess.CompletedProcess[str]:
    entry = ["--entrypoint", entrypoint] if entrypoint else []
    return podman(
        *"run --rm --read-only --user 10001:10001 --network host".split(),
        *ULIMITS,
        *entry,
        image,
        *args,
        check=False,
        timeout=120,
    )


@pytest.mark.parametrize(
    ("service", "entrypoint"),
    [("capture", None), ("event-sim", None), ("gateway", None), ("gateway", "latency-probe")],
)
def test_each_image_runs_read_only_as_its_user(
    images: dict[str, str], service: str, entrypoint: str | None
) -> None:
    out = run(images[service], "--help", entrypoint=entrypoint)
    assert out.returncode == 0, out.stderr
    assert "LOG_LEVEL" in out.stdout
    config = json.loads(podman("image", "inspect", images[service]).stdout)[0]["Config"]
    assert config["User"] == "10001:10001"
    size = int(json.loads(podman("image", "inspect", images[service]).stdout)[0]["Size"])
    print(f"\nimage rts-{service}: {size / 1e6:.0f} MB")


@pytest.fixture
def gateway_container(
    images: dict[str, str], kafka: KafkaUnderTest, services: ServiceGroup
) -> Iterator[tuple[str, str]]:
    prefix = f"img{uuid.uuid4().hex[:8]}."
    kafka.create_topics(list(TOPICS), prefix)
    port, ops = services.ports(2)
    name = f"rts-gateway-{uuid.uuid4().hex[:8]}"
    podman(
        "run",
        "--detach",
        "--name",
        name,
        *"--read-only --tmpfs /tmp --user 10001:10001 --network host".split(),
        *ULIMITS,
        "-e",
        f"KAFKA_BOOTSTRAP={kafka.bootstrap}",
        "-e",
        f"KAFKA_TOPIC_PREFIX={prefix}",
        "-e",
        f"GATEWAY_PORT={port}",
        "-e",
        f"GATEWAY_OPS_PORT={ops}",
        "-e",
        "LOG_FORMAT=console",
        images["gateway"],
    )
    try:
        # /readyz is on the ops port.
        yield name, f"http://127.0.0.1:{ops}"
    finally:
        podman("rm", "--force", name, check=False)


def test_the_gateway_image_serves_against_the_real_broker(
    gateway_container: tuple[str, str],
) -> None:
    name, url = gateway_container
    deadline = time.monotonic() + 120
    last = ""
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url + "/readyz", timeout=3) as response:
                body = json.loads(response.read())
                assert body["ready"] is True
                return
        except (urllib.error.URLError, OSError) as exc:
            last = repr(exc)
        time.sleep(1)
    logs = podman("logs", name, check=False)
    raise AssertionError(f"the gateway image never became ready: {last}\n{logs.stderr[-3000:]}")
