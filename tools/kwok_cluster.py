"""A real Kubernetes control plane on loopback, with fake nodes: `make cluster-up CLUSTER=kwok`.

etcd, kube-apiserver, kube-controller-manager and kube-scheduler (built at the pinned
version by `make controlplane`) and kwok, which plays the kubelet of a few fake nodes:
it marks scheduled pods running and ready without running anything. Deployments,
ReplicaSets, scaling, garbage collection, admission and server-side validation behave
as in any cluster; images, operators and pod traffic don't exist here.

    kwok_cluster.py up   --dir .data/kwok --bin .cache/k8s/v1.35.4/bin --crds tests/static/crds
    kwok_cluster.py down --dir .data/kwok

`up` writes <dir>/kubeconfig and <dir>/state.json (the processes and ports); `down`
stops every process `up` started, checks that none of their ports is still bound, and
deletes the cluster's data (etcd), as deleting a kind cluster would.
The test stage (tests/cluster) starts the same control plane in a temporary folder.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import yaml

NODES = 3
NODE_ANNOTATION = "kwok.x-k8s.io/node"
SERVICE_CIDR = "10.96.0.0/16"
# The order `up` starts them in; `down` stops them in reverse.
COMPONENTS = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok")


class ClusterError(Exception):
    pass


@dataclass
class State:
    """What `up` started, for `down` and for anyone who needs the addresses."""

    dir: str
    api_port: int
    etcd_port: int
    etcd_peer_port: int
    kwok_port: int
    pids: dict[str, int] = field(default_factory=dict)

    @property
    def server(self) -> str:
        return f"https://127.0.0.1:{self.api_port}"

    @property
    def ports(self) -> list[int]:
        return [self.api_port, self.etcd_port, self.etcd_peer_port, self.kwok_port]

    def save(self) -> None:
        (Path(self.dir) / "state.json").write_text(json.dumps(asdict(self), indent=2) + "\n")

    @classmethod
    def load(cls, directory: Path) -> State | None:
        path = directory / "state.json"
        if not path.exists():
            return None
        return cls(**json.loads(path.read_text()))


def free_ports(count: int) -> list[int]:
    """Distinct loopback ports free right now."""
    sockets = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def port_bound(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie (our own child that exited) is not running.
    with contextlib.suppress(OSError):
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[0] != "Z"
    return True


class ControlPlane:
    def __init__(self, directory: Path, bin_dir: Path, nodes: int = NODES) -> None:
        self.dir = directory.resolve()
        self.bin = bin_dir.resolve()
        self.nodes = nodes
        self.kubeconfig = self.dir / "kubeconfig"
        self.logs = self.dir / "logs"
        self.pki = self.dir / "pki"
        self.state: State | None = State.load(self.dir)
        self._children: list[subprocess.Popen[bytes]] = []

    # --- start -------------------------------------------------------------------------

    def up(self, crd_dirs: Sequence[Path] = (), timeout: float = 180.0) -> State:
        if self.state and any(alive(pid) for pid in self.state.pids.values()):
            raise ClusterError(
                f"a control plane from {self.dir} is already running (api {self.state.server}); "
                "stop it first (make cluster-down CLUSTER=kwok)"
            )
        missing = [c for c in COMPONENTS if not (self.bin / c).exists()]
        if missing:
            raise ClusterError(f"not built: {', '.join(missing)} in {self.bin} (make controlplane)")
        for sub in (self.logs, self.pki, self.dir / "etcd"):
            sub.mkdir(parents=True, exist_ok=True)
        api, etcd, peer, kwok = free_ports(4)
        self.state = State(str(self.dir), api, etcd, peer, kwok)
        self.state.save()
        token = self._credentials()
        try:
            self._start_etcd()
            self._start_apiserver()
            self._write_kubeconfig(token)
            self._wait_ready(timeout)
            self._start("kube-controller-manager", self._controller_manager_args())
            self._start("kube-scheduler", self._scheduler_args())
            self._start("kwok", self._kwok_args())
            self._create_nodes()
            for crd_dir in crd_dirs:
                self._apply_crds(crd_dir)
            self._wait_for_nodes(timeout)
            self._wait_for_default_service_account(timeout)
        except BaseException:
            self.down()
            raise
        return self.state

    def _credentials(self) -> str:
        """The admin's bearer token and the service accounts' signing key (made once)."""
        key, pub = self.pki / "sa.key", self.pki / "sa.pub"
        if not key.exists():
            self._run(
                [
                    "openssl",
                    "genpkey",
                    "-algorithm",
                    "RSA",
                    "-pkeyopt",
                    "rsa_keygen_bits:2048",
                    "-out",
                    str(key),
                ]
            )
            self._run(["openssl", "pkey", "-in", str(key), "-pubout", "-out", str(pub)])
        tokens = self.pki / "tokens.csv"
        if not tokens.exists():
            tokens.write_text(f"{os.urandom(24).hex()},admin,admin,system:masters\n")
            tokens.chmod(0o600)
        return tokens.read_text().split(",", 1)[0]

    def _start_etcd(self) -> None:
        assert self.state
        s = self.state
        self._start(
            "etcd",
            [
                "--name",
                "kwok",
                "--data-dir",
                str(self.dir / "etcd"),
                "--listen-client-urls",
                f"http://127.0.0.1:{s.etcd_port}",
                "--advertise-client-urls",
                f"http://127.0.0.1:{s.etcd_port}",
                "--listen-peer-urls",
                f"http://127.0.0.1:{s.etcd_peer_port}",
                "--initial-advertise-peer-urls",
                f"http://127.0.0.1:{s.etcd_peer_port}",
                "--initial-cluster",
                f"kwok=http://127.0.0.1:{s.etcd_peer_port}",
                # A throw-away store: no fsync per write, which on a busy 2-core machine
                # is what makes an API server slow.
                "--unsafe-no-fsync",
                "--quota-backend-bytes",
                str(1 << 30),
            ],
        )

    def _start_apiserver(self) -> None:
        assert self.state
        s = self.state
        self._start(
            "kube-apiserver",
            [
                "--etcd-servers",
                f"http://127.0.0.1:{s.etcd_port}",
                *"--bind-address 127.0.0.1 --advertise-address 127.0.0.1 --secure-port".split(),
                str(s.api_port),
                # A self-signed serving certificate for 127.0.0.1 and localhost; the
                # kubeconfig trusts the CA it writes next to it.
                "--cert-dir",
                str(self.pki),
                "--token-auth-file",
                str(self.pki / "tokens.csv"),
                *"--authorization-mode RBAC".split(),
                *"--service-account-issuer https://kubernetes.default.svc.cluster.local".split(),
                *"--service-account-key-file".split(),
                str(self.pki / "sa.pub"),
                "--service-account-signing-key-file",
                str(self.pki / "sa.key"),
                "--service-cluster-ip-range",
                SERVICE_CIDR,
                *"--allow-privileged --profiling=false --endpoint-reconciler-type none".split(),
            ],
        )

    def _controller_manager_args(self) -> list[str]:
        return [
            "--kubeconfig",
            str(self.kubeconfig),
            *"--leader-elect=false --secure-port 0 --service-account-private-key-file".split(),
            str(self.pki / "sa.key"),
            "--service-cluster-ip-range",
            SERVICE_CIDR,
            "--cluster-name",
            "kwok",
        ]

    def _scheduler_args(self) -> list[str]:
        return ["--kubeconfig", str(self.kubeconfig), "--leader-elect=false", "--secure-port", "0"]

    def _kwok_args(self) -> list[str]:
        assert self.state
        return [
            "--kubeconfig",
            str(self.kubeconfig),
            "--config",
            str(self.bin / "kwok-stages.yaml"),
            "--manage-nodes-with-annotation-selector",
            f"{NODE_ANNOTATION}=fake",
            # Node leases as a kubelet keeps them, so the node lifecycle controller never
            # finds the nodes silent and evicts their pods.
            "--node-lease-duration-seconds",
            "40",
            "--server-address",
            f"127.0.0.1:{self.state.kwok_port}",
            "--node-ip",
            "127.0.0.1",
        ]

    def _start(self, name: str, args: list[str]) -> None:
        assert self.state
        log = (self.logs / f"{name}.log").open("ab")
        process = subprocess.Popen(
            [str(self.bin / name), *args],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=self.dir,
            # Its own session: Ctrl-C in the terminal that ran `make cluster-up` must not
            # reach it; `down` stops it.
            start_new_session=True,
        )
        log.close()
        self._children.append(process)
        self.state.pids[name] = process.pid
        self.state.save()
        time.sleep(0.3)
        if process.poll() is not None:
            raise ClusterError(f"{name} exited at once:\n{self.log_tail(name)}")

    def _write_kubeconfig(self, token: str) -> None:
        assert self.state
        ca = self.pki / "apiserver.crt"
        deadline = time.monotonic() + 60
        while not ca.exists():
            self._check_running("kube-apiserver")
            if time.monotonic() > deadline:
                raise ClusterError("kube-apiserver wrote no serving certificate in 60 s")
            time.sleep(0.2)
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "kwok",
                    "cluster": {"server": self.state.server, "certificate-authority": str(ca)},
                }
            ],
            "users": [{"name": "admin", "user": {"token": token}}],
            "contexts": [{"name": "kwok", "context": {"cluster": "kwok", "user": "admin"}}],
            "current-context": "kwok",
        }
        self.kubeconfig.write_text(yaml.safe_dump(config, sort_keys=False))
        self.kubeconfig.chmod(0o600)

    def _wait_ready(self, timeout: float) -> None:
        """Until the API server's /readyz says every post-start hook has run."""
        assert self.state
        context = ssl.create_default_context(cafile=str(self.pki / "apiserver.crt"))
        token = self._token()
        deadline = time.monotonic() + timeout
        last = ""
        while time.monotonic() < deadline:
            self._check_running("etcd", "kube-apiserver")
            request = urllib.request.Request(  # noqa: S310 - our own https URL
                self.state.server + "/readyz", headers={"Authorization": f"Bearer {token}"}
            )
            try:
                with urllib.request.urlopen(request, timeout=5, context=context) as response:  # noqa: S310
                    if response.status == 200:
                        return
            except urllib.error.HTTPError as exc:
                last = f"{exc.code} {exc.read()[:300]!r}"
            except OSError as exc:
                last = repr(exc)
            time.sleep(0.5)
        raise ClusterError(f"kube-apiserver not ready in {timeout:.0f} s: {last}")

    def _token(self) -> str:
        return (self.pki / "tokens.csv").read_text().split(",", 1)[0]

    def _create_nodes(self) -> None:
        nodes = []
        for n in range(self.nodes):
            name = f"kwok-node-{n}"
            nodes.append(
                {
                    "apiVersion": "v1",
                    "kind": "Node",
                    "metadata": {
                        "name": name,
                        "annotations": {NODE_ANNOTATION: "fake"},
                        "labels": {
                            "kubernetes.io/hostname": name,
                            "kubernetes.io/os": "linux",
                            "kubernetes.io/arch": "amd64",
                            "type": "kwok",
                        },
                    },
                    "status": {
                        "allocatable": {"cpu": "16", "memory": "64Gi", "pods": "110"},
                        "capacity": {"cpu": "16", "memory": "64Gi", "pods": "110"},
                    },
                }
            )
        self.kubectl("apply", "-f", "-", stdin=yaml.safe_dump_all(nodes))

    def _apply_crds(self, directory: Path) -> None:
        files = sorted(directory.rglob("*.yaml"))
        if not files:
            raise ClusterError(f"no CRDs in {directory}")
        # Server-side: the Kafka CRD is too large for the last-applied annotation.
        self.kubectl("apply", "--server-side", *(a for f in files for a in ("-f", str(f))))
        deadline = time.monotonic() + 60
        while True:
            crds = json.loads(self.kubectl("get", "crd", "-o", "json"))["items"]
            waiting = [
                crd["metadata"]["name"]
                for crd in crds
                if not any(
                    c["type"] == "Established" and c["status"] == "True"
                    for c in crd.get("status", {}).get("conditions") or []
                )
            ]
            if not waiting:
                return
            if time.monotonic() > deadline:
                raise ClusterError(f"CRDs not established in 60 s: {', '.join(waiting)}")
            time.sleep(0.3)

    def _wait_for_nodes(self, timeout: float) -> None:
        self.kubectl(
            "wait", "--for", "condition=Ready", "node", "--all", f"--timeout={int(timeout)}s"
        )

    def _wait_for_default_service_account(self, timeout: float) -> None:
        """Pods can be created once the controller manager has made `default` accounts."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self._check_running(*COMPONENTS)
            found = self.kubectl(
                *"get serviceaccount default -n default --ignore-not-found -o name".split(),
            )
            if found.strip():
                return
            time.sleep(0.5)
        raise ClusterError("the controller manager made no default service account")

    def _run(self, argv: list[str]) -> None:
        out = subprocess.run(argv, capture_output=True, text=True, check=False)
        if out.returncode != 0:
            raise ClusterError(f"{' '.join(argv)}: {out.stderr.strip()}")

    def _check_running(self, *names: str) -> None:
        assert self.state
        for name in names:
            pid = self.state.pids.get(name)
            if pid is not None and not alive(pid):
                raise ClusterError(f"{name} stopped:\n{self.log_tail(name)}")

    # --- use ---------------------------------------------------------------------------

    def kubectl(self, *args: str, stdin: str | None = None, check: bool = True) -> str:
        out = subprocess.run(
            [str(self.bin / "kubectl"), "--kubeconfig", str(self.kubeconfig), *args],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        if check and out.returncode != 0:
            raise ClusterError(f"kubectl {' '.join(args)}: {out.stderr.strip()}")
        return out.stdout

    def log_tail(self, name: str, lines: int = 30) -> str:
        path = self.logs / f"{name}.log"
        if not path.exists():
            return "(no log)"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])

    # --- stop --------------------------------------------------------------------------

    def down(self, timeout: float = 20.0) -> list[str]:
        """Stop every process `up` started (newest first); the names of those stopped."""
        state = self.state or State.load(self.dir)
        if state is None:
            return []
        stopped = []
        for name in reversed(COMPONENTS):
            pid = state.pids.get(name)
            if pid is None or not alive(pid):
                continue
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + timeout
            while alive(pid) and time.monotonic() < deadline:
                self._reap()
                time.sleep(0.1)
            if alive(pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
                while alive(pid):
                    self._reap()
                    time.sleep(0.1)
            stopped.append(name)
        self._reap()
        deadline = time.monotonic() + 10
        while any(port_bound(p) for p in state.ports) and time.monotonic() < deadline:
            time.sleep(0.2)
        still = [p for p in state.ports if port_bound(p)]
        if still:
            raise ClusterError(f"ports still bound after stopping: {still}")
        (self.dir / "state.json").unlink(missing_ok=True)
        # Like deleting a kind cluster: the next `up` starts empty (the logs stay).
        shutil.rmtree(self.dir / "etcd", ignore_errors=True)
        self.state = None
        return stopped

    def _reap(self) -> None:
        for child in self._children:
            child.poll()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=["up", "down", "status"])
    parser.add_argument("--dir", type=Path, default=Path(".data/kwok"), help="state folder")
    parser.add_argument("--bin", type=Path, help="folder of the built programs (make controlplane)")
    parser.add_argument(
        "--crds",
        type=Path,
        action="append",
        default=[],
        help="folder of CRDs to install (repeatable)",
    )
    parser.add_argument("--nodes", type=int, default=NODES, help="fake nodes")
    args = parser.parse_args(argv)
    plane = ControlPlane(args.dir, args.bin or Path("."), args.nodes)
    try:
        if args.command == "up":
            if args.bin is None:
                parser.error("up needs --bin")
            state = plane.up(args.crds)
            nodes = plane.kubectl(
                "get",
                "nodes",
                "-o",
                "custom-columns=NAME:.metadata.name,"
                "STATUS:.status.conditions[?(@.type=='Ready')].type",
            )
            crds = plane.kubectl("get", "crd", "-o", "name").split()
            print(f"Kubernetes control plane (kwok) at {state.server}; logs in {plane.logs}")
            print(nodes.rstrip())
            print(f"{len(crds)} CRDs installed (Strimzi, prometheus-operator, KEDA)")
            print(
                "Fake nodes: pods are scheduled and marked running and ready, but nothing runs"
                " in them.\nNo images, no operators (Strimzi, Prometheus, KEDA), no pod"
                " network: use it for what the API server does (validation, admission,"
                " Deployments, scaling, helm install/upgrade/uninstall)."
            )
            print(f"\nexport KUBECONFIG={plane.kubeconfig}")
        elif args.command == "down":
            stopped = plane.down()
            print(f"stopped: {', '.join(stopped) or 'nothing was running'}")
        else:
            state = State.load(args.dir)
            if state is None:
                print("not running")
                return 1
            for name, pid in state.pids.items():
                print(f"{name}: pid {pid} {'running' if alive(pid) else 'STOPPED'}")
            print(f"api: {state.server}  kubeconfig: {plane.kubeconfig}")
    except ClusterError as exc:
        print(f"kwok cluster: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
