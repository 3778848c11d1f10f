"""The project's three images, built with podman and loaded into the real node.

Debian's podman, as root, with runc and cgroupfs and the host's network. The
Dockerfiles' base images come from Docker Hub; where no registry is reachable they are
replaced by stand-ins built from Debian packages (mmdebstrap, then `podman import`),
passed as the PYTHON_IMAGE and NODE_IMAGE build arguments. The stand-ins carry Debian's
Python 3.11 and Node.js, which is what the official images carry in their own build, so
every step of the Dockerfiles runs as written; the default bases stay the pinned
official ones.

Images are named as podman names local builds, `localhost/rts-<service>:<tag>`: the
chart asks for exactly that with `image.registry: localhost` (k8s/node.yaml).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from rts_cluster.kube import ClusterError

SERVICES = ("capture", "event-sim", "gateway")
REGISTRY = "localhost"
SUITE = "bookworm"
STANDINS = {
    # name -> Debian packages
    "python": ["python3", "python3-venv", "python3-pip", "ca-certificates"],
    "node": ["nodejs", "npm", "ca-certificates"],
}
# The sandbox's own limits: podman's defaults ask for more than an unprivileged root may.
ULIMITS = [*"--ulimit nofile=20000:20000".split(), *"--ulimit nproc=4096:4096".split()]
LOCAL_CAS = Path("/usr/local/share/ca-certificates")


def podman(
    *args: str, timeout: float = 1800, check: bool = True
) -> subprocess.CompletedProcess[str]:
    out = subprocess.run(
        ["podman", *"--runtime runc --cgroup-manager cgroupfs".split(), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if check and out.returncode != 0:
        raise ClusterError(f"podman {' '.join(args)}:\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}")
    return out


def missing_tools() -> list[str]:
    return [tool for tool in ("podman", "runc", "mmdebstrap") if shutil.which(tool) is None]


def image_name(service: str, tag: str) -> str:
    return f"{REGISTRY}/rts-{service}:{tag}"


def standin(name: str, cache: Path) -> str:
    """localhost/rts-standin/<name>:<suite>, made once from Debian packages.

    It trusts what this machine trusts: the certificate authorities added locally (a
    proxy's, say) are copied in, and pip, uv and npm are pointed at the system store,
    as the official images' users do behind such a proxy.
    """
    image = f"{REGISTRY}/rts-standin/{name}:{SUITE}"
    if podman("image", "exists", image, check=False).returncode == 0:
        return image
    cache.mkdir(parents=True, exist_ok=True)
    tarball = cache / f"standin-{name}-{SUITE}.tar"
    if not tarball.exists():
        # mmdebstrap picks the output's format by its extension.
        partial = tarball.with_name(tarball.stem + ".partial.tar")
        out = subprocess.run(
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
            capture_output=True,
            text=True,
            timeout=1200,
            check=False,
        )
        if out.returncode != 0:
            raise ClusterError(f"mmdebstrap {name}: {out.stderr[-3000:]}")
        partial.rename(tarball)
    base = f"{image}-debian"
    podman("import", str(tarball), base)
    with tempfile.TemporaryDirectory() as workdir:
        context = Path(workdir)
        (context / "ca").mkdir()
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


@dataclass(frozen=True)
class Built:
    service: str
    names: tuple[str, ...]
    seconds: float
    size: int  # bytes, uncompressed, as podman counts them

    def line(self) -> str:
        return f"{self.names[0]}: {self.size / 1e6:.0f} MB, built in {self.seconds:.0f} s" + (
            f" (also {', '.join(self.names[1:])})" if len(self.names) > 1 else ""
        )


def build(root: Path, tags: Sequence[str], cache: Path) -> list[Built]:
    """The three images from docker/*.Dockerfile, on the Debian stand-in bases.

    Side by side (the stand-ins, then the three images): most of a cold build waits on
    Debian's and PyPI's servers, not on the machine's cores.
    """
    missing = missing_tools()
    if missing:
        raise ClusterError(
            f"{', '.join(missing)} missing: apt-get install podman runc mmdebstrap "
            "(tools/system-deps.sh)"
        )
    with ThreadPoolExecutor(len(SERVICES)) as pool:
        python, node = pool.map(lambda name: standin(name, cache), ("python", "node"))
        return list(pool.map(lambda service: _build(root, service, tags, python, node), SERVICES))


def _build(root: Path, service: str, tags: Sequence[str], python: str, node: str) -> Built:
    names = tuple(image_name(service, tag) for tag in tags)
    started = time.monotonic()
    podman(
        *"build --network host".split(),
        *ULIMITS,
        *("--build-arg", f"PYTHON_IMAGE={python}", "--build-arg", f"NODE_IMAGE={node}"),
        *("-f", str(root / "docker" / f"{service}.Dockerfile")),
        *(arg for name in names for arg in ("-t", name)),
        str(root),
    )
    seconds = time.monotonic() - started
    size = int(json.loads(podman("image", "inspect", names[0]).stdout)[0]["Size"])
    return Built(service, names, seconds, size)


def save(names: Sequence[str], archive: Path) -> Path:
    """One docker-archive of `names` (podman writes several images only in that format)."""
    archive.unlink(missing_ok=True)
    podman(
        "save", "--multi-image-archive", "--format", "docker-archive", "-o", str(archive), *names
    )
    return archive
