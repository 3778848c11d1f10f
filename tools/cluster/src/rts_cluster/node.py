"""A real node beside kwok's fake ones: containerd and a kubelet on this machine.

The kubelet (built from the same pinned Kubernetes as the control plane) runs pods in a
containerd of the node's own (its own socket, root and state folders; Debian's
containerd and runc), so nothing else on the machine sees its containers and it sees
nobody's. What it can run, and what it cannot:

- Pods with `hostNetwork: true` only. There is no pod network: the runtime's network is
  a CNI configuration with the loopback plugin alone, which is what makes containerd
  report the network ready (a node without any CNI configuration stays NotReady). A pod
  without host networking would get a namespace with nothing but `lo` and fail to
  start. No Service routes (no kube-proxy, no cluster DNS), and nothing enforces
  NetworkPolicies.
- The node's address is the machine's own (the one of its default route): the kubelet
  refuses a loopback address. Host-network pods show it as their IP; the kubelet's
  probes and Prometheus reach the pods there, which never leaves the machine.
- cgroups: the machine's (v1 or v2), through cgroupfs, under a root of the node's own
  (`/rts-<id>`), so two nodes on one machine never see each other's pods.
- Images: none are pulled. The pause image is made here from Kubernetes' own pause.c
  (built by `make kubelet`), the project's images are loaded by `rts-cluster images`.

The node is tainted and labelled `rts/real-node=true`: only pods that tolerate the taint
and select the label (k8s/node.yaml) land on it; everything else stays on kwok's nodes.
`down` drains it (pods stopped by the kubelet as on pod deletion), stops the kubelet and
containerd, and checks that no container, mount, cgroup or port of it is left.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import platform
import shutil
import signal
import socket
import subprocess
import tarfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import yaml
from rts_cluster.controlplane import REAL_NODE, ControlPlane
from rts_cluster.daemons import Daemons, alive
from rts_cluster.kube import ClusterError
from rts_cluster.ports import free_ports
from rts_common.net import port_in_use

NODE_LABEL = "rts/real-node"
PAUSE_VERSION = "3.10.1"
PAUSE_IMAGE = f"localhost/pause:{PAUSE_VERSION}"
CNI_PLUGINS = Path("/usr/lib/cni")
# The containers' namespace in containerd that the kubelet (CRI) uses.
CRI_NAMESPACE = "k8s.io"
# What the kubelet sets on start (protectKernelDefaults: false) and `down` puts back.
KERNEL_SETTINGS = (
    "vm/overcommit_memory",
    "vm/panic_on_oom",
    "kernel/panic",
    "kernel/panic_on_oops",
    "kernel/keys/root_maxkeys",
    "kernel/keys/root_maxbytes",
)
# The kernel's limit on a Unix socket's path, counting the final NUL.
SOCKET_PATH_MAX = 107
# containerd's CRI writes its legacy log links here whatever its configuration says.
CONTAINER_LOG_LINKS = Path("/var/log/containers")


@dataclass
class NodeState:
    dir: str
    address: str
    kubelet_port: int
    cgroup_root: str
    kernel_settings: dict[str, str] = field(default_factory=dict)
    pids: dict[str, int] = field(default_factory=dict)

    def save(self) -> None:
        (Path(self.dir) / "state.json").write_text(json.dumps(asdict(self), indent=2) + "\n")

    @classmethod
    def load(cls, directory: Path) -> NodeState | None:
        path = directory / "state.json"
        if not path.exists():
            return None
        return cls(**json.loads(path.read_text()))


def primary_address() -> str:
    """The machine's address on its default route: the node's (never loopback)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            # TEST-NET-3: nothing is sent, the kernel only picks the route's source.
            s.connect(("203.0.113.1", 9))
        except OSError as exc:
            raise ClusterError(
                "the real node needs an address other than loopback (the kubelet refuses "
                f"127.0.0.1), and this machine has no default route: {exc}"
            ) from exc
        return str(s.getsockname()[0])


def goarch() -> str:
    machine = platform.machine()
    return {"x86_64": "amd64", "aarch64": "arm64"}.get(machine, machine)


def pause_image_archive(pause: Path) -> bytes:
    """An OCI image archive of Kubernetes' pause program (the same image registry.k8s.io's
    pause is: one static binary, run as nobody), for `ctr images import`."""
    layer_buffer = io.BytesIO()
    with tarfile.open(fileobj=layer_buffer, mode="w") as layer:
        info = layer.gettarinfo(str(pause), arcname="pause")
        info.uid = info.gid = 0
        info.uname = info.gname = ""
        info.mode = 0o755
        with pause.open("rb") as binary:
            layer.addfile(info, binary)
    blobs: dict[str, bytes] = {}

    def blob(data: bytes, media_type: str) -> dict[str, object]:
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        blobs[digest] = data
        return {"mediaType": media_type, "digest": digest, "size": len(data)}

    layer_descriptor = blob(layer_buffer.getvalue(), "application/vnd.oci.image.layer.v1.tar")
    config = {
        "architecture": goarch(),
        "os": "linux",
        "config": {"User": "65535:65535", "Entrypoint": ["/pause"]},
        "rootfs": {"type": "layers", "diff_ids": [layer_descriptor["digest"]]},
    }
    config_descriptor = blob(
        json.dumps(config).encode(), "application/vnd.oci.image.config.v1+json"
    )
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": config_descriptor,
        "layers": [layer_descriptor],
    }
    manifest_descriptor = blob(
        json.dumps(manifest).encode(), "application/vnd.oci.image.manifest.v1+json"
    )
    manifest_descriptor["annotations"] = {
        "io.containerd.image.name": PAUSE_IMAGE,
        "org.opencontainers.image.ref.name": PAUSE_VERSION,
    }
    index = {"schemaVersion": 2, "manifests": [manifest_descriptor]}
    files = {
        "oci-layout": json.dumps({"imageLayoutVersion": "1.0.0"}).encode(),
        "index.json": json.dumps(index).encode(),
        **{f"blobs/sha256/{d.split(':')[1]}": data for d, data in blobs.items()},
    }
    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return archive.getvalue()


# --- cgroups -------------------------------------------------------------------------------


def cgroup_hierarchies() -> list[Path]:
    """Mount points of the machine's cgroup hierarchies: v1's, one per controller set, and
    v2's unified one (alone, or beside v1's where runc keeps a path of each container too)."""
    found = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        left, _, right = line.partition(" - ")
        if right.split()[0] in ("cgroup", "cgroup2"):
            found.append(Path(left.split()[4]))
    return found


def cgroup_version() -> int:
    return 1 if any(_is_v1(h) for h in cgroup_hierarchies()) else 2


def _is_v1(hierarchy: Path) -> bool:
    return not (hierarchy / "cgroup.controllers").exists()


# The CPU weight of the node's cgroup root, as many processes' as its pods run: one
# cgroup weighs as one process beside the machine's others, and on a busy machine the
# pods would get a share of one process between them (starting Python for a minute).
CPU_SHARES = 8 * 1024


def make_cgroup_root(name: str) -> None:
    """The node's cgroup root in every hierarchy (the kubelet requires it to exist)."""
    for hierarchy in cgroup_hierarchies():
        path = hierarchy / name.lstrip("/")
        path.mkdir(exist_ok=True)
        if (path / "cpu.shares").exists():
            (path / "cpu.shares").write_text(str(CPU_SHARES))
        if (path / "cpu.weight").exists():
            (path / "cpu.weight").write_text(str(CPU_SHARES * 100 // 1024))
        if (hierarchy / "cpuset.cpus").exists() and _is_v1(hierarchy):
            # A new v1 cpuset is empty: no task may join it until it has CPUs and memory.
            for knob in ("cpuset.cpus", "cpuset.mems"):
                (path / knob).write_text((hierarchy / knob).read_text())
        if not _is_v1(hierarchy):
            wanted = (hierarchy / "cgroup.subtree_control").read_text().split()
            if wanted:  # none in the unified hierarchy of a v1 machine
                (path / "cgroup.subtree_control").write_text(" ".join(f"+{c}" for c in wanted))


def remove_cgroup_root(name: str) -> list[str]:
    """Remove the node's cgroups, deepest first; the ones that could not be (busy)."""
    busy = []
    for hierarchy in cgroup_hierarchies():
        root = hierarchy / name.lstrip("/")
        if not root.exists():
            continue
        for path in [*sorted((p for p in root.rglob("*") if p.is_dir()), reverse=True), root]:
            try:
                path.rmdir()
            except OSError:
                busy.append(str(path))
    return busy


# --- mounts --------------------------------------------------------------------------------


def mounts_under(directory: Path) -> list[str]:
    """Mount points at or below `directory` (from this process's mount table)."""
    prefix = str(directory.resolve())
    found = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = line.split()[4].replace("\\040", " ")
        if point == prefix or point.startswith(prefix + "/"):
            found.append(point)
    return found


def unmount_all(directory: Path) -> list[str]:
    """Unmount everything below `directory`, deepest first; what could not be unmounted."""
    for point in sorted(set(mounts_under(directory)), key=len, reverse=True):
        subprocess.run(["umount", point], capture_output=True, check=False)
    left = mounts_under(directory)
    for point in sorted(set(left), key=len, reverse=True):
        # Busy: detach it now, the kernel frees it when its last user goes.
        subprocess.run(["umount", "--lazy", point], capture_output=True, check=False)
    return left


class RealNode:
    """The real node of a control plane (rts_cluster.controlplane), in <plane dir>/node."""

    def __init__(self, plane: ControlPlane, bin_dir: Path | None = None) -> None:
        self.plane = plane
        self.bin = (bin_dir or plane.bin).resolve()
        self.dir = plane.dir / "node"
        self.socket = self.dir / "containerd.sock"
        self.containerd_root = self.dir / "containerd"
        self.kubelet_root = self.dir / "kubelet"
        self.pod_logs = self.dir / "pod-logs"
        self.daemons = Daemons(self.dir / "logs")
        self.state = NodeState.load(self.dir)
        # Its own cgroup root, named after its folder: another node on the machine has
        # another one, and the kubelet removes every pod cgroup under its root it does
        # not know.
        self.cgroup_root = "/rts-" + hashlib.sha256(str(self.dir).encode()).hexdigest()[:10]

    # --- start -------------------------------------------------------------------------

    def missing(self) -> list[str]:
        """What this machine lacks to run the node, each with how to get it."""
        problems = []
        if os.geteuid() != 0:
            problems.append("root: the kubelet and containerd mount, and manage cgroups")
        for program, package in (
            ("containerd", "containerd"),
            ("ctr", "containerd"),
            ("runc", "runc"),
        ):
            if shutil.which(program) is None:
                problems.append(f"{program} (apt-get install {package}; tools/system-deps.sh)")
        if not (CNI_PLUGINS / "loopback").exists():
            problems.append(f"{CNI_PLUGINS}/loopback (apt-get install containernetworking-plugins)")
        for built in ("kubelet", "pause"):
            if not (self.bin / built).exists():
                problems.append(f"{self.bin / built} (make kubelet)")
        if len(str(self.socket)) > SOCKET_PATH_MAX:
            problems.append(f"a shorter folder: {self.socket} is too long for a Unix socket")
        return problems

    def up(self, timeout: float = 180.0) -> NodeState:
        if self.state and any(alive(pid) for pid in self.state.pids.values()):
            raise ClusterError(f"the real node of {self.plane.dir} is already running")
        missing = self.missing()
        if missing:
            raise ClusterError("the real node needs: " + "; ".join(missing))
        for sub in (self.containerd_root, self.kubelet_root, self.pod_logs, self.dir / "cni"):
            sub.mkdir(parents=True, exist_ok=True)
        (kubelet_port,) = free_ports(1)
        self.state = NodeState(
            str(self.dir),
            primary_address(),
            kubelet_port,
            self.cgroup_root,
            {name: Path("/proc/sys", name).read_text().strip() for name in KERNEL_SETTINGS},
        )
        self.state.save()
        try:
            make_cgroup_root(self.state.cgroup_root)
            self._start_containerd()
            self._import_pause_image()
            self._start_kubelet()
            self._wait_ready(timeout)
        except BaseException:
            self.down()
            raise
        return self.state

    def _start_containerd(self) -> None:
        assert self.state
        config = self.dir / "containerd.toml"
        config.write_text(self._containerd_config())
        (self.dir / "cni" / "10-loopback.conflist").write_text(
            json.dumps(
                {
                    "cniVersion": "1.0.0",
                    "name": "loopback-only",
                    "plugins": [{"type": "loopback"}],
                },
                indent=2,
            )
            + "\n"
        )
        self.socket.unlink(missing_ok=True)
        self._start("containerd", ["containerd", "--config", str(config)])
        deadline = time.monotonic() + 60
        while self.ctr("version", check=False).returncode != 0:
            self._check_running("containerd")
            if time.monotonic() > deadline:
                raise ClusterError(
                    f"containerd did not answer in 60 s:\n{self.log_tail('containerd')}"
                )
            time.sleep(0.2)

    def _containerd_config(self) -> str:
        root, state = self.containerd_root / "root", self.containerd_root / "state"
        cri = 'plugins."io.containerd.grpc.v1.cri"'
        return f"""\
version = 2
root = "{root}"
state = "{state}"
# Snapshotters this node does not use would only log that they cannot start.
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.zfs"]

[grpc]
  address = "{self.socket}"

[plugins."io.containerd.internal.v1.opt"]
  path = "{self.containerd_root / "opt"}"

[{cri}]
  sandbox_image = "{PAUSE_IMAGE}"
  # The kubelet asks for -998 for sandboxes; lowering a score takes CAP_SYS_RESOURCE,
  # which a root in a container or sandbox may lack (runc then fails to start any pod:
  # "can't get final child's PID from pipe"). Scores stay at or above containerd's own.
  restrict_oom_score_adj = true
  # kubectl exec/attach/port-forward: the kubelet proxies to this, on a port the
  # server binds itself.
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"

  [{cri}.containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"

    [{cri}.containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"

      [{cri}.containerd.runtimes.runc.options]
        # cgroupfs, as the kubelet's cgroupDriver: no systemd manages these cgroups.
        SystemdCgroup = false
        Root = "{state / "runc"}"

  [{cri}.cni]
    bin_dir = "{CNI_PLUGINS}"
    conf_dir = "{self.dir / "cni"}"
"""

    def _import_pause_image(self) -> None:
        archive = self.dir / "pause.oci.tar"
        archive.write_bytes(pause_image_archive(self.bin / "pause"))
        self.ctr("images", "import", str(archive))
        archive.unlink()

    def _start_kubelet(self) -> None:
        assert self.state
        kubeconfig = self.plane.write_kubeconfig(
            self.dir / "kubeconfig", f"system:node:{REAL_NODE}"
        )
        config = self.dir / "kubelet.yaml"
        config.write_text(yaml.safe_dump(self._kubelet_config(), sort_keys=False))
        self._start(
            "kubelet",
            [
                str(self.bin / "kubelet"),
                "--config",
                str(config),
                "--kubeconfig",
                str(kubeconfig),
                "--root-dir",
                str(self.kubelet_root),
                "--cert-dir",
                str(self.dir / "pki"),
                "--hostname-override",
                REAL_NODE,
                "--node-ip",
                self.state.address,
                "--node-labels",
                f"{NODE_LABEL}=true",
                "--v",
                "1",
            ],
        )

    def _kubelet_config(self) -> dict[str, object]:
        assert self.state
        return {
            "apiVersion": "kubelet.config.k8s.io/v1beta1",
            "kind": "KubeletConfiguration",
            # The API server reaches the kubelet (exec, logs) at the node's address.
            "address": self.state.address,
            "port": self.state.kubelet_port,
            "readOnlyPort": 0,
            "healthzPort": 0,
            "authentication": {
                "anonymous": {"enabled": False},
                "webhook": {"enabled": True},
                "x509": {"clientCAFile": str(self.plane.kubelet_client_ca)},
            },
            "authorization": {"mode": "Webhook"},
            "containerRuntimeEndpoint": f"unix://{self.socket}",
            "cgroupDriver": "cgroupfs",
            "cgroupRoot": self.state.cgroup_root,
            # Kubernetes 1.35 refuses cgroup v1 unless told; many machines still have it.
            "failCgroupV1": False,
            "failSwapOn": False,
            # No kube-proxy: the machine's firewall is left as it is.
            "makeIPTablesUtilChains": False,
            "podLogsDir": str(self.pod_logs),
            "registerWithTaints": [{"key": NODE_LABEL, "value": "true", "effect": "NoSchedule"}],
            # A shared disk that others fill: evict only when it is really full.
            "evictionHard": {
                "memory.available": "200Mi",
                "nodefs.available": "2%",
                "imagefs.available": "2%",
                "nodefs.inodesFree": "2%",
            },
            "imageGCHighThresholdPercent": 99,
            "imageGCLowThresholdPercent": 98,
            "maxPods": 30,
            "serializeImagePulls": False,
            "nodeStatusUpdateFrequency": "5s",
        }

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        last = ""
        while time.monotonic() < deadline:
            self._check_running("containerd", "kubelet")
            found = self.plane.kube.kubectl("get", "node", REAL_NODE, "-o", "json")
            if found.returncode == 0:
                conditions = json.loads(found.stdout)["status"].get("conditions") or []
                ready = [c for c in conditions if c["type"] == "Ready"]
                if ready and ready[0]["status"] == "True":
                    return
                last = ready[0]["message"] if ready else "no Ready condition yet"
            else:
                last = found.stderr.strip()
            time.sleep(1)
        raise ClusterError(
            f"the real node was not ready in {timeout:.0f} s: {last}\n{self.log_tail('kubelet')}"
        )

    def _start(self, name: str, argv: list[str]) -> None:
        assert self.state
        pid = self.daemons.start(name, argv, cwd=self.dir)
        self.state.pids[name] = pid
        self.state.save()
        time.sleep(0.3)
        self._check_running(name)

    def _check_running(self, *names: str) -> None:
        assert self.state
        for name in names:
            pid = self.state.pids.get(name)
            if pid is not None and not alive(pid):
                raise ClusterError(f"{name} stopped:\n{self.log_tail(name)}")

    def log_tail(self, name: str, lines: int = 30) -> str:
        return self.daemons.log_tail(name, lines)

    # --- use ---------------------------------------------------------------------------

    def ctr(
        self, *args: str, check: bool = True, timeout: float = 600
    ) -> subprocess.CompletedProcess[str]:
        out = subprocess.run(
            ["ctr", "--address", str(self.socket), "--namespace", CRI_NAMESPACE, *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if check and out.returncode != 0:
            raise ClusterError(f"ctr {' '.join(args)}: {out.stderr.strip()}")
        return out

    def load_images(self, archive: Path) -> list[str]:
        """Import an image archive (docker-archive or OCI) into the node; the names."""
        before = set(self.image_names())
        self.ctr("images", "import", str(archive))
        return sorted(set(self.image_names()) - before) or self.image_names()

    def image_names(self) -> list[str]:
        return sorted(self.ctr("images", "list", "--quiet").stdout.split())

    def running(self) -> bool:
        return self.state is not None and any(alive(p) for p in self.state.pids.values())

    # --- stop --------------------------------------------------------------------------

    def down(self, drain_timeout: float = 90.0) -> list[str]:
        """Drain and stop the node; what it stopped. Raises when something is left."""
        state = self.state or NodeState.load(self.dir)
        if state is None:
            return []
        done = self._stop(state, drain_timeout)
        problems = []
        stuck = unmount_all(self.dir)
        if stuck:
            problems.append(f"mounts that were busy (detached lazily): {stuck}")
        busy = remove_cgroup_root(state.cgroup_root)
        if busy:
            problems.append(f"cgroups still in use: {busy}")
        for name, value in state.kernel_settings.items():
            with contextlib.suppress(OSError):
                Path("/proc/sys", name).write_text(value)
        self._remove_log_links()
        deadline = time.monotonic() + 10
        while port_in_use(state.kubelet_port, state.address) and time.monotonic() < deadline:
            time.sleep(0.2)
        if port_in_use(state.kubelet_port, state.address):
            problems.append(f"the kubelet's port {state.kubelet_port} is still bound")
        if problems:
            raise ClusterError("the real node left: " + "; ".join(problems))
        for sub in (self.containerd_root, self.kubelet_root, self.pod_logs, self.dir / "pki"):
            shutil.rmtree(sub, ignore_errors=True)
        (self.dir / "state.json").unlink(missing_ok=True)
        self.state = None
        return done

    def _stop(self, state: NodeState, drain_timeout: float) -> list[str]:
        """Drain, then stop the kubelet, what containers it left, containerd and its shims."""
        done = []
        kubelet, containerd = state.pids.get("kubelet"), state.pids.get("containerd")
        if kubelet and alive(kubelet):
            if self.plane.running():
                with contextlib.suppress(ClusterError, subprocess.TimeoutExpired):
                    done.append(f"drained {self._drain(drain_timeout)} pods")
            self.daemons.stop(kubelet)
            done.append("kubelet")
        if containerd and alive(containerd):
            removed = self._remove_containers()
            if removed:
                done.append(f"removed {removed} containers the kubelet left")
            self.daemons.stop(containerd)
            done.append("containerd")
        shims = self._stop_shims()
        if shims:
            done.append(f"stopped {shims} container shims")
        return done

    def _drain(self, timeout: float) -> int:
        """Stop every pod of the node the way a pod deletion does (grace period, preStop,
        volumes unmounted by the kubelet); replacements stay pending (cordoned)."""
        kube = self.plane.kube
        kube.ok("cordon", REAL_NODE)
        selector = f"spec.nodeName={REAL_NODE}"
        pods = kube.json("get", "pods", "--all-namespaces", "--field-selector", selector)["items"]
        kube.ok("delete", "pods", "--all-namespaces", "--field-selector", selector, "--wait=false")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            left = kube.ok("get", "pods", "-A", "--field-selector", selector, "-o", "name")
            if not left.strip():
                break
            time.sleep(0.5)
        return len(pods)

    def _remove_containers(self) -> int:
        tasks = self.ctr("tasks", "list", "--quiet", check=False).stdout.split()
        for task in tasks:
            self.ctr("tasks", "kill", "--signal", "SIGKILL", task, check=False)
        for task in tasks:
            deadline = time.monotonic() + 10
            while self.ctr("tasks", "delete", task, check=False).returncode != 0:
                if time.monotonic() > deadline:
                    break
                time.sleep(0.2)
        containers = self.ctr("containers", "list", "--quiet", check=False).stdout.split()
        for container in containers:
            self.ctr("containers", "delete", container, check=False)
        return len(containers)

    def _stop_shims(self) -> int:
        """containerd's shims outlive containerd by design: the ones of this node go."""
        address = str(self.socket)
        stopped = 0
        for proc in Path("/proc").iterdir():
            if not proc.name.isdigit():
                continue
            try:
                argv = (proc / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if argv and argv[0].endswith(b"containerd-shim-runc-v2") and address.encode() in argv:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(int(proc.name), signal.SIGKILL)
                stopped += 1
        return stopped

    def _remove_log_links(self) -> None:
        if not CONTAINER_LOG_LINKS.is_dir():
            return
        for link in CONTAINER_LOG_LINKS.iterdir():
            if link.is_symlink() and os.readlink(link).startswith(str(self.pod_logs)):
                link.unlink(missing_ok=True)

    def leftovers(self) -> list[str]:
        """Anything of a stopped node still on the machine (empty when it left nothing)."""
        found = [f"mount {m}" for m in mounts_under(self.dir)]
        address = str(self.socket).encode()
        for proc in Path("/proc").iterdir():
            with contextlib.suppress(OSError):
                if proc.name.isdigit() and address in (proc / "cmdline").read_bytes():
                    found.append(f"process {proc.name}")
        found += [
            f"cgroup {h / self.cgroup_root.lstrip('/')}"
            for h in cgroup_hierarchies()
            if (h / self.cgroup_root.lstrip("/")).exists()
        ]
        return found
