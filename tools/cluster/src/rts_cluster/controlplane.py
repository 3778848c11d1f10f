"""A real Kubernetes control plane on loopback, with kwok's fake nodes.

etcd, kube-apiserver, kube-controller-manager and kube-scheduler (built at the pinned
version by `make controlplane`) and kwok, which plays the kubelet of a few fake nodes:
it marks scheduled pods running and ready without running anything. Deployments,
ReplicaSets, scaling, garbage collection, admission and server-side validation behave
as in any cluster. A real node (rts_cluster.node) can join it: the API server
authorizes kubelets as real clusters do (the Node authorizer and NodeRestriction) and
reaches them with a client certificate of its own.

`up` writes <dir>/kubeconfig and <dir>/state.json (the processes and ports); `down`
stops every process `up` started, checks that none of their ports is still bound, and
deletes the cluster's data (etcd), as deleting a kind cluster would.
"""

from __future__ import annotations

import json
import os
import shutil
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import yaml
from rts_cluster.daemons import Daemons, alive
from rts_cluster.kube import ClusterError, Kube
from rts_cluster.ports import free_ports
from rts_common.net import port_in_use

NODES = 3
NODE_ANNOTATION = "kwok.x-k8s.io/node"
SERVICE_CIDR = "10.96.0.0/16"
# The order `up` starts them in; `down` stops them in reverse.
COMPONENTS = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok")
# Who gets a bearer token (tokens.csv): user -> groups. A kubelet is system:node:<name> in
# system:nodes (what the Node authorizer expects); Prometheus reads pods and endpoints.
ADMIN = "admin"
PROMETHEUS = "prometheus"
REAL_NODE = "rts-node"
USERS = {
    ADMIN: "system:masters",
    f"system:node:{REAL_NODE}": "system:nodes",
    PROMETHEUS: "rts:prometheus",
}
# What Prometheus's Kubernetes service discovery reads (bound to group rts:prometheus).
PROMETHEUS_RBAC = """\
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: rts-prometheus}
rules:
  - apiGroups: [""]
    resources: [pods, services, endpoints, nodes]
    verbs: [get, list, watch]
  - apiGroups: [discovery.k8s.io]
    resources: [endpointslices]
    verbs: [get, list, watch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: rts-prometheus}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: rts-prometheus}
subjects:
  - {apiGroup: rbac.authorization.k8s.io, kind: Group, name: "rts:prometheus"}
"""


@dataclass
class State:
    """What `up` started, for `down` and for anyone who needs the addresses."""

    dir: str
    api_port: int
    etcd_port: int
    etcd_peer_port: int
    kwok_port: int
    pids: dict[str, int] = field(default_factory=dict)
    bin: str = ""  # the programs it runs, for the commands that come later (down)

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


def openssl(*args: str) -> None:
    out = subprocess.run(["openssl", *args], capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise ClusterError(f"openssl {' '.join(args)}: {out.stderr.strip()}")


class ControlPlane:
    def __init__(
        self,
        directory: Path,
        bin_dir: Path | None = None,
        nodes: int = NODES,
        helm: str = "helm",
    ) -> None:
        """`bin_dir`: the built programs; by default those of the cluster running there."""
        self.dir = directory.resolve()
        self.state: State | None = State.load(self.dir)
        self.bin = (bin_dir or Path(self.state.bin if self.state else ".")).resolve()
        self.nodes = nodes
        self.kubeconfig = self.dir / "kubeconfig"
        self.logs = self.dir / "logs"
        self.pki = self.dir / "pki"
        self.daemons = Daemons(self.logs)
        self.kube = Kube(
            str(self.bin / "kubectl"), self.kubeconfig, helm_bin=helm, helm_home=self.dir / "helm"
        )

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
        self.state = State(str(self.dir), api, etcd, peer, kwok, bin=str(self.bin))
        self.state.save()
        self._credentials()
        try:
            self._start("etcd", self._etcd_args())
            self._start("kube-apiserver", self._apiserver_args())
            self._wait_for_serving_certificate()
            self.write_kubeconfig(self.kubeconfig, ADMIN)
            self._wait_ready(timeout)
            self._start("kube-controller-manager", self._controller_manager_args())
            self._start("kube-scheduler", self._scheduler_args())
            self._start("kwok", self._kwok_args())
            self._create_nodes()
            self.kube.ok("apply", "-f", "-", stdin=PROMETHEUS_RBAC)
            for crd_dir in crd_dirs:
                self._apply_crds(crd_dir)
            self._wait_for_nodes(timeout)
            self._wait_for_default_service_account(timeout)
        except BaseException:
            self.down()
            raise
        return self.state

    def _credentials(self) -> None:
        """Made once per folder: the service accounts' signing key, a bearer token per
        user, and the client certificate the API server shows kubelets (and the CA a
        kubelet checks it with)."""
        key, pub = self.pki / "sa.key", self.pki / "sa.pub"
        if not key.exists():
            openssl(*"genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out".split(), str(key))
            openssl("pkey", "-in", str(key), "-pubout", "-out", str(pub))
        tokens = self.pki / "tokens.csv"
        if not tokens.exists():
            lines = [
                f"{os.urandom(24).hex()},{user},{user},{groups}" for user, groups in USERS.items()
            ]
            tokens.write_text("\n".join(lines) + "\n")
            tokens.chmod(0o600)
        ca, ca_key = self.pki / "kubelet-client-ca.crt", self.pki / "kubelet-client-ca.key"
        client = self.pki / "apiserver-kubelet-client"
        if not client.with_suffix(".crt").exists():
            openssl(
                *"req -x509 -newkey rsa:2048 -nodes -days 3650".split(),
                *"-subj /CN=rts-kubelet-client-ca".split(),
                "-keyout",
                str(ca_key),
                "-out",
                str(ca),
            )
            csr = client.with_suffix(".csr")
            openssl(
                *"req -newkey rsa:2048 -nodes".split(),
                "-subj",
                "/O=system:masters/CN=kube-apiserver-kubelet-client",
                "-keyout",
                str(client.with_suffix(".key")),
                "-out",
                str(csr),
            )
            openssl(
                *"x509 -req -days 3650 -set_serial 1 -in".split(),
                str(csr),
                "-CA",
                str(ca),
                "-CAkey",
                str(ca_key),
                "-out",
                str(client.with_suffix(".crt")),
            )
            csr.unlink()

    def token(self, user: str) -> str:
        for line in (self.pki / "tokens.csv").read_text().splitlines():
            token, name, *_ = line.split(",")
            if name == user:
                return token
        raise ClusterError(f"no token for {user} in {self.pki / 'tokens.csv'}")

    @property
    def kubelet_client_ca(self) -> Path:
        return self.pki / "kubelet-client-ca.crt"

    @property
    def ca(self) -> Path:
        """The API server's self-signed serving certificate, which clients trust."""
        return self.pki / "apiserver.crt"

    def _etcd_args(self) -> list[str]:
        assert self.state
        s = self.state
        return [
            *"--name kwok --data-dir".split(),
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
        ]

    def _apiserver_args(self) -> list[str]:
        assert self.state
        s = self.state
        client = self.pki / "apiserver-kubelet-client"
        return [
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
            # Kubelets as in any cluster: each may read only what its own pods need.
            *"--authorization-mode Node,RBAC --enable-admission-plugins NodeRestriction".split(),
            "--kubelet-client-certificate",
            str(client.with_suffix(".crt")),
            "--kubelet-client-key",
            str(client.with_suffix(".key")),
            *"--kubelet-preferred-address-types InternalIP".split(),
            *"--service-account-issuer https://kubernetes.default.svc.cluster.local".split(),
            "--service-account-key-file",
            str(self.pki / "sa.pub"),
            "--service-account-signing-key-file",
            str(self.pki / "sa.key"),
            "--service-cluster-ip-range",
            SERVICE_CIDR,
            *"--allow-privileged --profiling=false --endpoint-reconciler-type none".split(),
        ]

    def _controller_manager_args(self) -> list[str]:
        return [
            "--kubeconfig",
            str(self.kubeconfig),
            *"--leader-elect=false --secure-port 0 --service-account-private-key-file".split(),
            str(self.pki / "sa.key"),
            "--service-cluster-ip-range",
            SERVICE_CIDR,
            *"--cluster-name kwok".split(),
        ]

    def _scheduler_args(self) -> list[str]:
        return [
            "--kubeconfig",
            str(self.kubeconfig),
            *"--leader-elect=false --secure-port 0".split(),
        ]

    def _kwok_args(self) -> list[str]:
        assert self.state
        return [
            "--kubeconfig",
            str(self.kubeconfig),
            "--config",
            str(self.bin / "kwok-stages.yaml"),
            # Only the fake nodes: a real node beside them is its kubelet's.
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
        pid = self.daemons.start(name, [str(self.bin / name), *args], cwd=self.dir)
        self.state.pids[name] = pid
        self.state.save()
        time.sleep(0.3)
        if not alive(pid):
            raise ClusterError(f"{name} exited at once:\n{self.daemons.log_tail(name)}")

    def _wait_for_serving_certificate(self) -> None:
        deadline = time.monotonic() + 60
        while not self.ca.exists():
            self._check_running("kube-apiserver")
            if time.monotonic() > deadline:
                raise ClusterError("kube-apiserver wrote no serving certificate in 60 s")
            time.sleep(0.2)

    def write_kubeconfig(self, path: Path, user: str) -> Path:
        """A kubeconfig for `user` (one of USERS) with its bearer token."""
        assert self.state
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "kwok",
                    "cluster": {"server": self.state.server, "certificate-authority": str(self.ca)},
                }
            ],
            "users": [{"name": user, "user": {"token": self.token(user)}}],
            "contexts": [{"name": "kwok", "context": {"cluster": "kwok", "user": user}}],
            "current-context": "kwok",
        }
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        path.chmod(0o600)
        return path

    def _wait_ready(self, timeout: float) -> None:
        """Until the API server's /readyz says every post-start hook has run."""
        assert self.state
        context = ssl.create_default_context(cafile=str(self.ca))
        token = self.token(ADMIN)
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
        self.kube.ok("apply", "-f", "-", stdin=yaml.safe_dump_all(nodes))

    def _apply_crds(self, directory: Path) -> None:
        files = sorted(directory.rglob("*.yaml"))
        if not files:
            raise ClusterError(f"no CRDs in {directory}")
        # Server-side: the Kafka CRD is too large for the last-applied annotation.
        self.kube.ok("apply", "--server-side", *(a for f in files for a in ("-f", str(f))))
        deadline = time.monotonic() + 60
        while True:
            crds = self.kube.json("get", "crd")["items"]
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
        self.kube.ok(
            *"wait --for condition=Ready node -l type=kwok".split(),
            f"--timeout={int(timeout)}s",
            timeout=timeout + 10,
        )

    def _wait_for_default_service_account(self, timeout: float) -> None:
        """Pods can be created once the controller manager has made `default` accounts."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self._check_running(*COMPONENTS)
            found = self.kube.ok(
                *"get serviceaccount default -n default --ignore-not-found -o name".split(),
            )
            if found.strip():
                return
            time.sleep(0.5)
        raise ClusterError("the controller manager made no default service account")

    def _check_running(self, *names: str) -> None:
        assert self.state
        for name in names:
            pid = self.state.pids.get(name)
            if pid is not None and not alive(pid):
                raise ClusterError(f"{name} stopped:\n{self.daemons.log_tail(name)}")

    def running(self) -> bool:
        return self.state is not None and any(alive(pid) for pid in self.state.pids.values())

    # --- stop --------------------------------------------------------------------------

    def down(self, timeout: float = 20.0) -> list[str]:
        """Stop every process `up` started (newest first); the names of those stopped."""
        state = self.state or State.load(self.dir)
        if state is None:
            return []
        stopped = [
            name
            for name in reversed(COMPONENTS)
            if name in state.pids and self.daemons.stop(state.pids[name], timeout)
        ]
        deadline = time.monotonic() + 10
        while any(port_in_use(p) for p in state.ports) and time.monotonic() < deadline:
            time.sleep(0.2)
        still = [p for p in state.ports if port_in_use(p)]
        if still:
            raise ClusterError(f"ports still bound after stopping: {still}")
        (self.dir / "state.json").unlink(missing_ok=True)
        # Like deleting a kind cluster: the next `up` starts empty (the logs stay).
        shutil.rmtree(self.dir / "etcd", ignore_errors=True)
        self.state = None
        return stopped
