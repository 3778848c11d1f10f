"""kubectl and helm against one cluster, with the kubeconfig and environment built once.

Everything that talks to a cluster goes through a `Kube`: the control plane while it
starts, the real node, the tests, the smoke test of a kind or minikube cluster. It runs
the programs with one environment (KUBECONFIG, and helm's own folders when it has a
state folder, so a test's helm never reads the user's repositories or plugins).
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")


class ClusterError(Exception):
    """A cluster tool failed; the message says what and why."""


@dataclass(frozen=True)
class Result:
    returncode: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr

    def check(self) -> str:
        """The output of a run that must succeed; a ClusterError with its message if not."""
        if self.returncode != 0:
            raise ClusterError(self.output.strip())
        return self.stdout


@dataclass(frozen=True)
class Kube:
    """One cluster as kubectl and helm see it.

    `kubeconfig` (a file) or `context` (of the user's kubeconfig) picks the cluster;
    `namespace` is added to every kubectl call when set; `helm_home` keeps helm's
    cache, configuration and data in a folder of their own.
    """

    kubectl_bin: str = "kubectl"
    kubeconfig: Path | None = None
    context: str | None = None
    namespace: str | None = None
    helm_bin: str = "helm"
    helm_home: Path | None = None
    env: Mapping[str, str] = field(init=False)

    def __post_init__(self) -> None:
        env = dict(os.environ)
        if self.kubeconfig is not None:
            env["KUBECONFIG"] = str(self.kubeconfig)
        if self.helm_home is not None:
            for kind in ("CACHE", "CONFIG", "DATA"):
                env[f"HELM_{kind}_HOME"] = str(self.helm_home / kind.lower())
        object.__setattr__(self, "env", env)

    def in_namespace(self, namespace: str) -> Kube:
        return Kube(
            self.kubectl_bin,
            self.kubeconfig,
            self.context,
            namespace,
            self.helm_bin,
            self.helm_home,
        )

    @property
    def kubectl_argv(self) -> list[str]:
        argv = [self.kubectl_bin]
        if self.context:
            argv += ["--context", self.context]
        if self.namespace:
            argv += ["--namespace", self.namespace]
        return argv

    def run(self, argv: list[str], stdin: str | None = None, timeout: float = 180) -> Result:
        out = subprocess.run(
            argv,
            input=stdin,
            capture_output=True,
            text=True,
            env=dict(self.env),
            timeout=timeout,
            check=False,
        )
        return Result(out.returncode, out.stdout, out.stderr)

    def kubectl(self, *args: str, stdin: str | None = None, timeout: float = 180) -> Result:
        return self.run([*self.kubectl_argv, *args], stdin, timeout)

    def helm(self, *args: str, timeout: float = 600) -> Result:
        argv = [self.helm_bin]
        if self.context:
            argv += ["--kube-context", self.context]
        if self.namespace:
            argv += ["--namespace", self.namespace]
        return self.run([*argv, *args], timeout=timeout)

    def ok(self, *args: str, stdin: str | None = None, timeout: float = 180) -> str:
        """kubectl's output; a ClusterError with its message when it fails."""
        result = self.kubectl(*args, stdin=stdin, timeout=timeout)
        if result.returncode != 0:
            raise ClusterError(f"kubectl {' '.join(args)}: {result.stderr.strip()}")
        return result.stdout

    def json(self, *args: str) -> Any:
        return json.loads(self.ok(*args, "-o", "json"))

    @contextlib.contextmanager
    def port_forward(self, target: str, remote: int) -> Iterator[str]:
        """A local URL forwarded to `target` (svc/x or pod/x) port `remote`."""
        local = free_port()
        process = subprocess.Popen(
            [*self.kubectl_argv, "port-forward", target, f"{local}:{remote}"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            env=dict(self.env),
        )
        try:
            wait_listening(local, process)
            yield f"http://127.0.0.1:{local}"
        finally:
            process.terminate()
            process.wait(10)


def free_port() -> int:
    """A loopback port the kernel picks, for a client-side listener (port-forward)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_listening(port: int, process: subprocess.Popen[str], timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise ClusterError(
                f"port-forward ended: {process.stderr.read() if process.stderr else ''}"
            )
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
            return
        time.sleep(0.2)
    raise ClusterError(f"port-forward to local port {port} did not start")


def eventually(what: str, check: Callable[[], T], timeout: float, every: float = 1.0) -> T:
    """Call `check` until it returns something truthy; its last answer explains a timeout.

    `check` may raise ClusterError (or ValueError, OSError) to say why it is not there yet.
    """
    deadline = time.monotonic() + timeout
    last: object = None
    while True:
        try:
            result = check()
            if result:
                return result
            last = result
        except (ClusterError, ValueError, OSError) as exc:
            last = exc
        if time.monotonic() > deadline:
            raise ClusterError(f"{what}: not within {timeout:.0f}s (last: {last})")
        time.sleep(every)
