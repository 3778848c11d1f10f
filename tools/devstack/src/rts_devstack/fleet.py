"""The local stack's gateway replicas behind nginx, and `make scale` to change how many.

`make run GATEWAYS=N` starts N replicas on loopback ports (the gateway's port + 1, + 2,
...) and nginx on the gateway's port, configured like the chart's ingress (proxy.py).
While the stack runs, `make scale GATEWAYS=N` asks it, over a Unix socket in the data
folder, for another number of replicas, as `kubectl scale` does in the cluster:

- scaling up starts the new replicas, waits until each is ready (Kafka answers, the
  cameras are known) and only then puts them behind nginx;
- scaling down first takes replicas out of nginx, so no new browser reaches them, then
  stops them gracefully: each ends its streams, sends its browsers to reconnect (through
  nginx, to another replica) and leaves its consumer groups after a last checkpoint;
- a replica that died is taken out of nginx; the next `make scale` starts it again.
"""

from __future__ import annotations

import contextlib
import hashlib
import signal
import socket
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

from rts_devstack.processes import http_get
from rts_devstack.proxy import Proxy, reload_workers
from rts_devstack.supervisor import Output, Service, Supervisor

NGINX = "nginx"
REPLICA_PREFIX = "gateway-"
READY_TIMEOUT = 180.0
# Unix socket paths are limited to 108 bytes on Linux.
SOCKET_PATH_LIMIT = 100

Say = Callable[[str], None]


def replica_name(index: int) -> str:
    return f"{REPLICA_PREFIX}{index}"


class ScaleError(Exception):
    """A scale request that cannot be carried out, with the reason for the user."""


class Fleet:
    """The running replicas, nginx in front of them, and how to change their number."""

    def __init__(
        self,
        supervisor: Supervisor,
        proxy: Proxy,
        nginx: str,
        make_replica: Callable[[int], Service],
        on_change: Callable[[list[Service]], None],
    ) -> None:
        """`make_replica(i)`: replica i's service (name gateway-i); `on_change(replicas)`:
        called after every change (Prometheus's targets follow it)."""
        self._supervisor = supervisor
        self._proxy = proxy
        self._nginx = nginx
        self._make_replica = make_replica
        self._on_change = on_change
        self._lock = threading.Lock()
        self.replicas: dict[int, Service] = {}

    def adopt(self, services: list[Service]) -> None:
        """The replicas `make run` started."""
        for service in services:
            if service.name.startswith(REPLICA_PREFIX):
                self.replicas[int(service.name.removeprefix(REPLICA_PREFIX))] = service

    def addresses(self) -> dict[str, str]:
        return {s.name: address(s) for _, s in sorted(self.replicas.items())}

    def scale(self, count: int, say: Say) -> None:
        if count < 1:
            raise ScaleError("at least one gateway replica is needed")
        with self._lock:
            for name in [s.name for s in self.replicas.values()]:
                if not self._supervisor.running(name):
                    self._forget(name)
            wanted = set(range(1, count + 1))
            new = sorted(wanted - set(self.replicas))
            gone = sorted(set(self.replicas) - wanted)
            if new:
                self._start(new, say)
            if gone:
                self._stop(gone, say)
            if not new and not gone:
                say(f"already {count} gateway replica(s)")
            self._on_change(list(self.replicas.values()))
            say(f"gateways: {', '.join(self.addresses())} behind {self._proxy.url}")

    def exited(self, name: str) -> bool:
        """A replica ended on its own: take it out of nginx. False: not a replica."""
        if not name.startswith(REPLICA_PREFIX):
            return False
        with self._lock:
            self._forget(name)
            if self.replicas:
                self._reload()
            self._on_change(list(self.replicas.values()))
        return True

    # -- with the lock held

    def _start(self, indices: list[int], say: Say) -> None:
        services = [self._make_replica(i) for i in indices]
        for service in services:
            say(f"starting {service.name} on {address(service)}")
            self._supervisor.start(service)
        for service in services:
            took = self._wait_ready(service)
            say(f"{service.name} ready in {took:.1f}s")
            self.replicas[int(service.name.removeprefix(REPLICA_PREFIX))] = service
        took = self._reload()
        say(f"nginx sends new browsers to {len(self.replicas)} replica(s) ({took:.1f}s)")

    def _stop(self, indices: list[int], say: Say) -> None:
        names = [replica_name(i) for i in indices]
        for index in indices:
            del self.replicas[index]
        took = self._reload()
        say(f"nginx no longer sends browsers to {', '.join(names)} ({took:.1f}s)")
        started = time.monotonic()
        self._supervisor.stop(names)
        say(f"stopped {', '.join(names)} in {time.monotonic() - started:.1f}s")

    def _forget(self, name: str) -> None:
        self.replicas = {i: s for i, s in self.replicas.items() if s.name != name}

    def _reload(self) -> float:
        self._proxy.write(self.addresses())
        self._proxy.check(self._nginx)
        master = self._supervisor.pid(NGINX)
        if master is None or not self._supervisor.running(NGINX):
            raise ScaleError("nginx is not running")
        return reload_workers(master, lambda: self._supervisor.signal(NGINX, signal.SIGHUP))

    def _wait_ready(self, service: Service) -> float:
        started = time.monotonic()
        url = ready_url(service.metrics) if service.metrics else f"http://{address(service)}/readyz"
        while time.monotonic() - started < READY_TIMEOUT:
            if not self._supervisor.running(service.name):
                raise ScaleError(f"{service.name} exited while starting (see its output)")
            with contextlib.suppress(OSError):
                if http_get(url, timeout=2)[0] == 200:
                    return time.monotonic() - started
            time.sleep(0.5)
        raise ScaleError(f"{service.name} was not ready within {READY_TIMEOUT:.0f}s")


def ready_url(metrics_url: str) -> str:
    """A gateway's /readyz, beside its /metrics on its ops port."""
    return metrics_url.removesuffix("/metrics") + "/readyz"


def address(service: Service) -> str:
    """host:port of a gateway service (its --port flag)."""
    argv = list(service.argv)
    return f"127.0.0.1:{argv[argv.index('--port') + 1]}"


# -- the control socket: `rts-devstack scale N` talks to the running `rts-devstack run`


def control_socket(data_dir: Path) -> Path:
    """Where a running stack listens for scale requests: in its data folder, or (when
    that path is too long for a Unix socket) in the temp folder, named after it."""
    path = data_dir.resolve() / "devstack.sock"
    if len(str(path)) <= SOCKET_PATH_LIMIT:
        return path
    digest = hashlib.sha256(str(data_dir.resolve()).encode()).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / f"rts-devstack-{digest}.sock"


def serve(path: Path, fleet: Fleet | None, output: Output, stop: threading.Event) -> None:
    """Answer scale requests until `stop`: one line in (`scale N`), progress lines out,
    then `ok` or `error: ...`."""
    path.unlink(missing_ok=True)
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(path))
    path.chmod(0o600)
    server.listen(4)
    server.settimeout(0.5)
    try:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            with conn:
                _answer(conn, fleet, output)
    finally:
        server.close()
        path.unlink(missing_ok=True)


def _answer(conn: socket.socket, fleet: Fleet | None, output: Output) -> None:
    def say(line: str) -> None:
        output.line("devstack", line)
        with contextlib.suppress(OSError):
            conn.sendall(line.encode() + b"\n")

    conn.settimeout(10)
    try:
        request = conn.makefile("r").readline().split()
        if len(request) != 2 or request[0] != "scale" or not request[1].isdigit():
            raise ScaleError(f"unknown request {' '.join(request)!r}")
        if fleet is None:
            raise ScaleError(
                "this stack runs one gateway without nginx: start it with "
                "`make run GATEWAYS=N` to scale it"
            )
        conn.settimeout(None)
        say(f"scaling the gateway to {request[1]} replica(s)")
        fleet.scale(int(request[1]), say)
        say("ok")
    except (ScaleError, ValueError, TimeoutError, OSError) as exc:
        say(f"error: {exc}")


def request_scale(path: Path, count: int, out: Callable[[str], None]) -> bool:
    """Ask the stack listening at `path` for `count` replicas; True when it says ok."""
    if not path.exists():
        out("no running stack here: start one with `make run GATEWAYS=N`")
        return False
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
        try:
            conn.connect(str(path))
        except OSError as exc:
            out(f"the stack does not answer ({exc}): is `make run` still running?")
            return False
        conn.sendall(f"scale {count}\n".encode())
        last = ""
        for line in conn.makefile("r"):
            last = line.rstrip("\n")
            out(last)
    return last == "ok"
