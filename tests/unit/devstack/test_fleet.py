"""`make scale` against a stack of stand-in replicas (small HTTP servers that answer as a
gateway does: ready, and naming themselves in a header) behind the real nginx: no broker."""

from __future__ import annotations

import collections
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from rts_devstack import ports, proxy
from rts_devstack.fleet import Fleet, control_socket, request_scale, serve
from rts_devstack.launch import Launch
from rts_devstack.processes import http_get
from rts_devstack.supervisor import Output, Supervisor

STAND_IN = """
import http.server, os, sys
name, port = os.environ["GATEWAY_REPLICA"], int(sys.argv[sys.argv.index("--port") + 1])
class Replica(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.send_header("X-Gateway-Replica", name)
        self.send_header("Content-Length", "0")
        self.end_headers()
    def log_message(self, *args):
        pass
http.server.ThreadingHTTPServer(("127.0.0.1", port), Replica).serve_forever()
"""


Stack = tuple[Fleet, Supervisor, proxy.Proxy, list[list[str]]]


class Lines(Output):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def line(self, name: str, text: str) -> None:
        self.lines.append(f"{name}: {text}")


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    """One stand-in replica behind nginx, as `make run GATEWAYS=1` starts; the list
    collects what Prometheus would be told to scrape after each change."""
    nginx = proxy.binary()
    assert nginx, "nginx is missing: run `make system-deps` (CI installs it)"
    reserved = ports.reserve(6)
    port, *replica_ports = reserved
    front = proxy.Proxy(port, tmp_path / "nginx")
    supervisor = Supervisor(Lines(), cwd=tmp_path)
    targets: list[list[str]] = []

    def replica(name: str) -> Launch:
        port = replica_ports[int(name.removeprefix("gateway-")) - 1]
        url = f"http://127.0.0.1:{port}"
        argv = [sys.executable, "-c", STAND_IN, "--port", str(port)]
        return Launch(name, argv, {"GATEWAY_REPLICA": name}, url=url, ready=f"{url}/readyz")

    fleet = Fleet(
        supervisor.start,
        front,
        replica,
        on_change=lambda rs: targets.append([r.name for r in rs]),
        forget=supervisor.forget,
    )
    first = supervisor.start(replica("gateway-1"))
    assert first is not None
    first.wait_ready(30)
    nginx_process = supervisor.start(front.launch(nginx, {first.name: first.url[7:]}))
    assert nginx_process is not None
    fleet.adopt([first, nginx_process])
    try:
        yield fleet, supervisor, front, targets
    finally:
        supervisor.stop_all(timeout=5)
        reserved.release()


def answered_by(url: str, requests_: int = 12) -> collections.Counter[str]:
    """Which replicas answer new browsers (no cookie)."""
    return collections.Counter(
        requests.get(url, timeout=5).headers["X-Gateway-Replica"] for _ in range(requests_)
    )


def test_scaling_up_and_down_changes_who_answers_behind_the_same_port(
    stack: Stack,
) -> None:
    fleet, supervisor, front, targets = stack
    said: list[str] = []
    front_url = front.url + "/"
    wait_listening(front)
    assert set(answered_by(front_url)) == {"gateway-1"}
    fleet.scale(3, said.append)
    assert set(answered_by(front_url)) == {"gateway-1", "gateway-2", "gateway-3"}
    assert targets[-1] == ["gateway-1", "gateway-2", "gateway-3"]
    fleet.scale(2, said.append)
    assert set(answered_by(front_url)) == {"gateway-1", "gateway-2"}
    assert not supervisor.running("gateway-3")
    assert targets[-1] == ["gateway-1", "gateway-2"]
    assert any("nginx no longer sends browsers to gateway-3" in line for line in said)


def test_a_dead_replica_leaves_nginx_and_the_next_scale_brings_it_back(
    stack: Stack,
) -> None:
    fleet, supervisor, front, _targets = stack
    fleet.scale(2, lambda _line: None)
    supervisor.stop(["gateway-2"])  # as if it died: the supervisor reports it
    assert fleet.exited("gateway-2")
    assert set(answered_by(front.url + "/")) == {"gateway-1"}
    fleet.scale(2, lambda _line: None)
    assert set(answered_by(front.url + "/")) == {"gateway-1", "gateway-2"}


def test_a_dead_replica_started_again_rejoins_nginx_once_ready(stack: Stack) -> None:
    fleet, supervisor, front, targets = stack
    fleet.scale(2, lambda _line: None)
    died = fleet.replicas["gateway-2"]
    died.kill()
    assert [e.name for e in supervisor.exited()] == ["gateway-2"]
    assert fleet.exited("gateway-2")
    assert set(answered_by(front.url + "/")) == {"gateway-1"}
    said: list[str] = []
    rejoining = fleet.restart("gateway-2", said.append)
    assert rejoining is not None
    rejoining.join(30)
    assert said[-1].startswith("gateway-2 is ready again")
    assert fleet.replicas["gateway-2"] is not died
    assert set(answered_by(front.url + "/")) == {"gateway-1", "gateway-2"}
    assert targets[-1] == ["gateway-1", "gateway-2"]


def test_a_replica_scaled_away_while_dead_is_not_started_again(stack: Stack) -> None:
    fleet, supervisor, _front, _targets = stack
    fleet.scale(2, lambda _line: None)
    fleet.replicas["gateway-2"].kill()
    fleet.exited("gateway-2")
    fleet.scale(1, lambda _line: None)
    said: list[str] = []
    assert fleet.restart("gateway-2", said.append) is None
    assert said == []
    assert not supervisor.running("gateway-2")
    assert list(fleet.replicas) == ["gateway-1"]


def test_nginx_started_again_fronts_the_replicas_there_are_now(stack: Stack) -> None:
    fleet, _supervisor, front, _targets = stack
    fleet.scale(2, lambda _line: None)
    assert fleet.nginx is not None
    fleet.nginx.kill()
    said: list[str] = []
    assert fleet.restart("nginx", said.append) is None
    assert said == [f"nginx is back in front of {', '.join(fleet.addresses())}"]
    assert set(answered_by(front.url + "/")) == {"gateway-1", "gateway-2"}


def test_make_scale_talks_to_the_running_stack_over_its_socket(
    stack: Stack, tmp_path: Path
) -> None:
    fleet, _supervisor, front, _targets = stack
    path = control_socket(tmp_path)
    stop = threading.Event()
    server = threading.Thread(target=serve, args=(path, fleet, Lines(), stop), daemon=True)
    server.start()
    try:
        printed: list[str] = []
        wait_for(path)
        assert request_scale(path, 2, printed.append), printed
        assert printed[-1] == "ok"
        assert http_get(front.url + "/")[0] == 200
        assert not request_scale(path, 0, printed.append)
        assert printed[-1].startswith("error: at least one")
    finally:
        stop.set()
        server.join(5)
    assert not path.exists()


def test_a_stack_without_replicas_says_how_to_get_them(tmp_path: Path) -> None:
    printed: list[str] = []
    path = control_socket(tmp_path)
    assert not request_scale(path, 2, printed.append)
    assert "make run GATEWAYS=N" in printed[-1]
    stop = threading.Event()
    server = threading.Thread(target=serve, args=(path, None, Lines(), stop), daemon=True)
    server.start()
    try:
        wait_for(path)
        assert not request_scale(path, 2, printed.append)
        assert "start it with `make run GATEWAYS=N`" in printed[-1]
    finally:
        stop.set()
        server.join(5)


def wait_listening(front: proxy.Proxy) -> None:
    deadline = time.monotonic() + 10
    while True:
        try:
            if http_get(front.url + "/")[0] == 200:
                return
        except OSError:
            assert time.monotonic() < deadline, "nginx does not answer"
        time.sleep(0.05)


def wait_for(path: Path) -> None:
    """The server binds in its own thread."""
    deadline = time.monotonic() + 5
    while not path.exists():
        assert time.monotonic() < deadline, path
        time.sleep(0.05)


def test_the_control_socket_fits_a_unix_socket_path(tmp_path: Path) -> None:
    deep = tmp_path / ("x" * 120)
    assert len(str(control_socket(deep))) <= 100
    assert control_socket(deep) == control_socket(deep)  # `make scale` finds the same one
