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
- a replica that died is taken out of nginx, and `make run` starts it again (`restart`):
  it rejoins nginx once ready, unless `make scale` took it away meanwhile.

The tests and the benchmarks drive the same Fleet, by replica name, in a ServiceGroup.
"""

from __future__ import annotations

import contextlib
import hashlib
import signal
import socket
import tempfile
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from rts_common.net import port_in_use

from rts_devstack import proxy
from rts_devstack.launch import Launch
from rts_devstack.processes import ServiceProcess
from rts_devstack.proxy import NGINX, Proxy, reload_workers
from rts_devstack.supervisor import Output

REPLICA_PREFIX = "gateway-"
READY_TIMEOUT = 180.0
STOP_TIMEOUT = 40.0
# Unix socket paths are limited to 108 bytes on Linux (less the ".new" of a socket
# being set up).
SOCKET_PATH_LIMIT = 100

Say = Callable[[str], None]


def replica_name(index: int) -> str:
    return f"{REPLICA_PREFIX}{index}"


class ScaleError(Exception):
    """A scale request that cannot be carried out, with the reason for the user."""


class Fleet:
    """Gateway replicas behind nginx: started, stopped and killed by name (the tests and
    benchmarks), or scaled to a number (`make scale`), always in the same order: a new
    replica joins nginx once it is ready, a leaving one leaves nginx before it stops."""

    def __init__(
        self,
        start: Callable[[Launch], ServiceProcess | None],
        front: Proxy | None,
        make_replica: Callable[[str], Launch],
        *,
        on_change: Callable[[list[ServiceProcess]], None] | None = None,
        forget: Callable[[str], None] | None = None,
    ) -> None:
        """`start`: how processes start (a ServiceGroup's or `make run`'s supervisor's);
        `front`: nginx's place (None: replicas without nginx, as a benchmark may want);
        `make_replica(name)`: that replica's launch; `on_change(replicas)`: called after
        every change (Prometheus's targets follow it); `forget(name)`: told before a
        replica is stopped on purpose (so its exit is not reported as a failure)."""
        self._start = start
        self.front = front
        self._make_replica = make_replica
        self._on_change = on_change or (lambda _replicas: None)
        self._forget = forget or (lambda _name: None)
        self._lock = threading.RLock()
        self.replicas: dict[str, ServiceProcess] = {}
        self.nginx: ServiceProcess | None = None
        self.size = 0  # replicas asked for: `make run`'s, then `make scale`'s
        self._restarting: dict[str, ServiceProcess] = {}  # started again, not ready yet

    @property
    def url(self) -> str:
        if self.front is None:
            raise ValueError("these replicas have no nginx in front")
        return self.front.url

    def adopt(self, processes: Iterable[ServiceProcess]) -> None:
        """The replicas and nginx `make run` started."""
        for process in processes:
            if process.name.startswith(REPLICA_PREFIX):
                self.replicas[process.name] = process
            elif process.name == NGINX:
                self.nginx = process
        self.size = len(self.replicas)

    def addresses(self) -> dict[str, str]:
        return {name: address(p) for name, p in sorted(self.replicas.items())}

    # -- by name

    def start(self, *names: str, timeout: float = READY_TIMEOUT) -> float:
        """Start replicas, wait until each is ready, then put them behind nginx; returns
        the seconds until all were ready."""
        with self._lock:
            started = time.monotonic()
            new = {}
            for name in names:
                process = self._start(self._make_replica(name))
                if process is None:
                    raise ScaleError(f"{name} could not be started (see its output)")
                new[name] = process
            for process in new.values():
                try:
                    process.wait_ready(timeout)
                except AssertionError as failed:
                    raise ScaleError(str(failed).split("\n", 1)[0]) from None
            took = time.monotonic() - started
            self.replicas.update(new)
            self._route()
            return took

    def stop(self, *names: str, timeout: float = STOP_TIMEOUT) -> dict[str, int]:
        """Take replicas out of nginx, then stop them gracefully, together; returns their
        exit codes."""
        with self._lock:
            leaving = [self.replicas.pop(name) for name in names]
            if self.replicas:
                self._route()
            for process in leaving:
                self._forget(process.name)
                process.signal(signal.SIGTERM)
            codes = {}
            for process in leaving:
                try:
                    codes[process.name] = process.wait_exit(timeout)
                except AssertionError:  # it ignored SIGTERM
                    process.kill()
                    codes[process.name] = process.proc.returncode
            return codes

    def kill(self, name: str) -> None:
        """kill -9 a replica (gunicorn's master and worker); nginx is not told, as a
        cluster's endpoints would not be yet."""
        with self._lock:
            self.replicas.pop(name).kill()

    # -- by number: `make scale`

    def scale(self, count: int, say: Say) -> None:
        if count < 1:
            raise ScaleError("at least one gateway replica is needed")
        with self._lock:
            self.size = count
            for name in [n for n, p in self.replicas.items() if not p.running]:
                del self.replicas[name]
            wanted = {replica_name(i) for i in range(1, count + 1)}
            for name in sorted(set(self._restarting) - wanted, key=_index):
                self._forget(name)
                self._restarting.pop(name).kill()
            new = sorted(wanted - set(self.replicas) - set(self._restarting), key=_index)
            gone = sorted(set(self.replicas) - wanted, key=_index)
            if new:
                for name in new:
                    say(f"starting {name}")
                took = self.start(*new)
                say(f"{', '.join(new)} ready in {took:.1f}s")
                say(f"nginx sends new browsers to {len(self.replicas)} replica(s)")
            if gone:
                started = time.monotonic()
                self.stop(*gone)
                say(f"nginx no longer sends browsers to {', '.join(gone)}")
                say(f"stopped {', '.join(gone)} in {time.monotonic() - started:.1f}s")
            if not new and not gone:
                say(f"already {count} gateway replica(s)")
            self._on_change(list(self.replicas.values()))
            say(f"gateways: {', '.join(self.addresses())} behind {self.url}")

    def exited(self, name: str) -> bool:
        """A replica ended on its own: take it out of nginx. False: not a replica."""
        if not name.startswith(REPLICA_PREFIX):
            return False
        with self._lock:
            self._restarting.pop(name, None)
            self.replicas.pop(name, None)
            if self.replicas:
                self._route()
            self._on_change(list(self.replicas.values()))
        return True

    def owns(self, name: str) -> bool:
        """A process the fleet starts again itself: a replica, nginx."""
        return name == NGINX or name.startswith(REPLICA_PREFIX)

    def restart(self, name: str, say: Say) -> threading.Thread | None:
        """Start a replica that died again, and put it back behind nginx once it is ready
        (unless `make scale` took it away or started it meanwhile), or nginx, in front of
        the replicas there are now. The process starts in the calling thread, which must
        outlive it (the kernel's parent-death signal follows the thread that started a
        process); a replica's readiness is awaited in a thread of its own, returned."""
        if name == NGINX:
            with self._lock:
                self.nginx = None
                self._route()
            say(f"nginx is back in front of {', '.join(self.addresses())}")
            return None
        with self._lock:
            if name in self.replicas or name in self._restarting or _index(name) > self.size:
                return None
            process = self._start(self._make_replica(name))
            if process is None:
                raise ScaleError(f"{name} could not be started again (see its output)")
            self._restarting[name] = process
        thread = threading.Thread(target=self._rejoin, args=(name, process, say), daemon=True)
        thread.start()
        return thread

    def _rejoin(self, name: str, process: ServiceProcess, say: Say) -> None:
        """Not under the lock: `make scale` and other replicas' exits go on meanwhile."""
        try:
            process.wait_ready(READY_TIMEOUT)
        except AssertionError as failed:
            with self._lock:
                if self._restarting.pop(name, None) is process:
                    first_line = str(failed).split("\n", 1)[0]
                    say(f"{name} did not come back: {first_line}")
            return  # else taken away by `make scale`, or its death is reported already
        with self._lock:
            if self._restarting.pop(name, None) is not process:
                return
            self.replicas[name] = process
            try:
                self._route(start=False)
            except (ScaleError, ValueError, TimeoutError) as exc:
                say(f"{name} is ready again, but not behind nginx yet: {exc}")
                return
            self._on_change(list(self.replicas.values()))
        took = time.monotonic() - process.started
        say(f"{name} is ready again ({took:.1f}s) and back behind nginx")

    # -- what the replicas say

    def owned(self, topic: str) -> dict[str, float]:
        """Partitions of `topic` each running replica owns (its own gauge)."""
        return {
            name: p.metric("gateway_partitions_assigned", topic=topic)
            for name, p in self.replicas.items()
        }

    def wait_settled(
        self, topic: str, partitions: int, timeout: float = 90.0, poll: float = 0.2
    ) -> float:
        """Wait until the running replicas own all partitions, spread evenly; seconds."""
        started = time.monotonic()
        owned: dict[str, float] = {}
        while time.monotonic() - started < timeout:
            owned = self.owned(topic)
            counts = list(owned.values())
            if counts and sum(counts) == partitions and max(counts) - min(counts) <= 1:
                return time.monotonic() - started
            time.sleep(poll)
        raise AssertionError(f"{topic} not settled in {timeout}s: {owned}")

    # -- nginx

    def _route(self, *, start: bool = True) -> float:
        """Point nginx at the replicas (starting it the first time, if `start`); the
        seconds it took."""
        front = self.front
        if front is None:
            return 0.0
        executable = proxy.binary()
        if executable is None:
            raise ScaleError("nginx is not installed (`sudo make system-deps`)")
        front.write(self.addresses())
        front.check(executable)
        if self.nginx is None and start:
            started = time.monotonic()
            self.nginx = self._start(front.launch(executable, self.addresses()))
            if self.nginx is None:
                raise ScaleError("nginx could not be started")
            self.nginx.wait_for(lambda: port_in_use(front.port, front.host), 30, "nginx listening")
            return time.monotonic() - started
        if self.nginx is None or not self.nginx.running:
            raise ScaleError("nginx is not running")
        return reload_workers(self.nginx.proc.pid, lambda: self.nginx_signal(signal.SIGHUP))

    def nginx_signal(self, signum: int) -> None:
        if self.nginx is not None:
            self.nginx.signal(signum)


def _index(name: str) -> int:
    return int(name.removeprefix(REPLICA_PREFIX)) if name.startswith(REPLICA_PREFIX) else 0


def address(process: ServiceProcess) -> str:
    """host:port of a gateway replica (what nginx proxies to)."""
    return process.url.removeprefix("http://").rstrip("/")


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
    # Bound and listening under a temporary name, then renamed: a client that sees the
    # path (make scale right after make run started) never finds a socket that refuses.
    pending = path.with_name(path.name + ".new")  # within SOCKET_PATH_LIMIT's margin
    pending.unlink(missing_ok=True)
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(pending))
    pending.chmod(0o600)
    server.listen(4)
    server.settimeout(0.5)
    pending.replace(path)
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
