"""The gateway as an attacker sees it: sign-in, sessions, scopes, limits, headers and the
records it reads from Kafka, each finding of the security audit reproduced over real HTTP
against gateways under gunicorn on the real broker."""

from __future__ import annotations

import io
import json
import re
import socket
import subprocess
import threading
import time
import urllib.parse
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import requests
import socketio
from confluent_kafka import Producer
from PIL import Image
from rts_common.contracts import TOPICS, CameraStatus, Detection, FrameMeta
from rts_common.signin import SESSION_COOKIE, Authenticator
from rts_devstack.launch import BIN
from rts_devstack.processes import metric_value

from tests.fixtures.kafka import KafkaUnderTest
from tests.fixtures.processes import ServiceGroup, ServiceProcess, kafka_env, start_gateway

SECRET = "security-test-secret-0123456789"
CAMERAS = {"cam-a": 0, "cam-b": 1}  # camera -> video-frames partition
FPS = 5


def _tiny_jpeg() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (32, 24), (200, 40, 40)).save(out, "JPEG")
    return out.getvalue()


class FakeCameras:
    """Publishes what capture processes would (a status every second, frames at FPS) for
    some cameras, plus whatever records a test wants to inject, to the real broker."""

    def __init__(self, kafka: KafkaUnderTest, prefix: str) -> None:
        self.prefix = prefix
        self.producer = Producer(kafka.config(**{"linger.ms": 5}))
        self.jpeg = _tiny_jpeg()
        self.cameras = dict(CAMERAS)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._seq = 0

    def start(self) -> FakeCameras:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.producer.flush(5)
        self.producer.close()

    def status(self, camera: str, partition: int, key: bytes | None = None) -> None:
        now = time.time_ns()
        # Unvalidated: tests also publish what a producer must not.
        status = CameraStatus.model_construct(
            camera=camera,
            ts=now,
            source="test",
            source_up=True,
            fps=FPS,
            width=32,
            height=24,
            partition=partition,
            last_frame_ts=now,
        )
        self.producer.produce(
            self.prefix + "video-cameras",
            status.model_dump_json().encode(),
            key=key if key is not None else camera.encode(),
        )

    def frame(self, key: bytes, partition: int) -> None:
        self._seq += 1
        meta = FrameMeta("unused", self._seq, time.time_ns(), 32, 24)
        self.producer.produce(
            self.prefix + "video-frames",
            self.jpeg,
            key=key,
            partition=partition,
            headers=meta.headers(),
            timestamp=meta.ts_ns // 1_000_000,
        )

    def detection(self, camera: str) -> None:
        detection = Detection(
            camera=camera,
            seq=1,
            ts=time.time_ns(),
            kind="motion",
            boxes=[(1, 2, 3, 4)],
            score=1.0,
            width=32,
            height=24,
        )
        self.producer.produce(
            self.prefix + "video-detections",
            detection.model_dump_json().encode(),
            key=camera.encode(),
        )
        self.producer.flush(5)

    def _run(self) -> None:
        last_status = 0.0
        while not self._stop.is_set():
            if time.monotonic() - last_status >= 1.0:
                for camera, partition in self.cameras.items():
                    self.status(camera, partition)
                last_status = time.monotonic()
            for camera, partition in self.cameras.items():
                self.frame(camera.encode(), partition)
            self.producer.poll(0)
            self._stop.wait(1 / FPS)


@dataclass
class Stack:
    prefix: str
    kafka: KafkaUnderTest
    cameras: FakeCameras
    gateway: ServiceProcess  # sign-in on, behind a trusted proxy (127.0.0.1), small limits
    replica: ServiceProcess  # a second replica of the same deployment
    auth: Authenticator

    def link_token(self, subject: str = "tester", **scope: object) -> str:
        return self.auth.login_token(subject, **scope)  # type: ignore[arg-type]

    def sign_in(self, gateway: ServiceProcess | None = None, **scope: object) -> requests.Session:
        http = requests.Session()
        response = sign_in(http, (gateway or self.gateway).url, self.link_token(**scope))
        assert response.status_code == 200, response.text
        return http


def sign_in(http: requests.Session, base: str, token: str, **headers: str) -> requests.Response:
    """The trade a login link's page makes: the token from the URL's fragment, POSTed."""
    return http.post(
        f"{base}/login", data={"token": token}, headers=headers, allow_redirects=False, timeout=10
    )


GATEWAY_FLAGS = (
    *"--trusted-proxies 127.0.0.1/32 --max-streams-per-session 2".split(),
    *"--max-streams 4 --max-replays-per-session 1".split(),
    *"--socketio-max-message-bytes 4096".split(),
    *"--release-after-seconds 0.5 --login-attempts-per-minute 60".split(),
)


@pytest.fixture(scope="module")
def stack(kafka: KafkaUnderTest) -> Iterator[Stack]:
    prefix = f"sec{uuid.uuid4().hex[:8]}."
    kafka.create_topics(list(TOPICS), prefix)
    cameras = FakeCameras(kafka, prefix).start()
    env = kafka_env(
        kafka.bootstrap,
        prefix,
        GATEWAY_AUTH_SECRET=SECRET,
        LOG_FORMAT="json",
        GATEWAY_GROUP_ID=f"sec-{prefix}",
    )
    try:
        with ServiceGroup(env) as group:
            gateway = start_gateway(group, *GATEWAY_FLAGS)
            replica = start_gateway(group, *GATEWAY_FLAGS, name="replica")
            for process in (gateway, replica):
                process.wait_ready(timeout=90)
            auth = Authenticator(SECRET, login_ttl=600, session_ttl=3600)
            stack = Stack(prefix, kafka, cameras, gateway, replica, auth)
            http = stack.sign_in()
            gateway.wait_for(
                lambda: (
                    {c["camera"] for c in http.get(gateway.url + "/api/cameras").json()["cameras"]}
                    >= set(CAMERAS)
                ),
                30,
                "both cameras listed",
            )
            yield stack
    finally:
        cameras.stop()


@pytest.fixture(scope="module")
def lone(stack: Stack) -> Iterator[ServiceProcess]:
    """Another gateway on the same topics, started later (a restarted replica): no trusted
    proxy, short sessions, a tight login rate, the access log on."""
    env = kafka_env(
        stack.kafka.bootstrap,
        stack.prefix,
        GATEWAY_AUTH_SECRET=SECRET,
        LOG_FORMAT="json",
        GATEWAY_GROUP_ID=f"sec-{stack.prefix}",
    )
    with ServiceGroup(env) as group:
        gateway = start_gateway(
            group,
            *"--session-ttl-seconds 10 --login-attempts-per-minute 5".split(),
            *"--access-log --release-after-seconds 0.5".split(),
            name="lone",
        )
        gateway.wait_ready(timeout=90)
        yield gateway


class Stream:
    """An MJPEG stream on a raw socket: its status, its parts' headers, and its end."""

    def __init__(self, url: str, cookie: str | None) -> None:
        parsed = urllib.parse.urlsplit(url)
        self.sock = socket.create_connection((parsed.hostname, parsed.port), timeout=10)
        path = parsed.path + (f"?{parsed.query}" if parsed.query else "")
        cookie_line = f"Cookie: {SESSION_COOKIE}={cookie}\r\n" if cookie else ""
        self.sock.sendall(
            f"GET {path} HTTP/1.1\r\nHost: {parsed.netloc}\r\n{cookie_line}"
            "Connection: close\r\n\r\n".encode()
        )
        self.data = b""
        while b"\r\n\r\n" not in self.data:
            self._recv()
        head, _, self.data = self.data.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        self.status = int(lines[0].split()[1])
        self.headers = {k.lower(): v for k, v in (line.split(": ", 1) for line in lines[1:])}

    def _recv(self) -> bool:
        chunk = self.sock.recv(65536)
        self.data += chunk
        return bool(chunk)

    def part_headers(self, timeout: float = 10.0) -> str:
        """The header block of the next MJPEG part (what the gateway wrote, verbatim)."""
        self.sock.settimeout(timeout)
        while not re.search(rb"--frame\r\n.*?\r\n\r\n", self.data, re.S):
            if not self._recv():
                raise EOFError("the stream ended")
        match = re.search(rb"--frame\r\n(.*?)\r\n\r\n", self.data, re.S)
        assert match
        self.data = self.data[match.end() :]
        return match.group(1).decode("latin-1")

    def ends_within(self, seconds: float) -> bool:
        """True if the server closes the stream within `seconds` (data still arriving)."""
        deadline = time.monotonic() + seconds
        self.sock.settimeout(0.5)
        while time.monotonic() < deadline:
            try:
                if not self._recv():
                    return True
            except TimeoutError:
                continue
            except OSError:
                return True
            self.data = self.data[-65536:]
        return False

    def close(self) -> None:
        self.sock.close()


def cookie_of(http: requests.Session) -> str:
    value = http.cookies.get(SESSION_COOKIE)
    assert value
    return value


def metrics(process: ServiceProcess) -> str:
    status, text = process.get("/metrics")
    assert status == 200
    return text


def socket_client(base: str, cookie: str) -> socketio.Client:
    client = socketio.Client(reconnection=False)
    client.connect(
        base,
        headers={"Cookie": f"{SESSION_COOKIE}={cookie}"},
        transports=["websocket"],
        wait_timeout=10,
    )
    return client


# --- the ops endpoints ---------------------------------------------------------------------


def test_metrics_and_probes_are_only_on_the_ops_port(stack: Stack) -> None:
    http = stack.sign_in()
    for path in ("/metrics", "/readyz", "/healthz"):
        assert http.get(stack.gateway.url + path, timeout=5).status_code == 404, path
        assert stack.gateway.get(path)[0] == 200, path
    assert stack.gateway.ops != stack.gateway.url


# --- cookies, proxies, headers -------------------------------------------------------------


def test_the_session_cookie_is_secure_when_a_trusted_proxy_says_tls(stack: Stack) -> None:
    secure = sign_in(
        requests.Session(), stack.gateway.url, stack.link_token(), **{"X-Forwarded-Proto": "https"}
    )
    assert secure.status_code == 200, secure.text
    assert "Secure" in secure.headers["Set-Cookie"]
    plain = sign_in(requests.Session(), stack.gateway.url, stack.link_token())
    assert "Secure" not in plain.headers["Set-Cookie"]  # plain http (make run) still works
    assert "HttpOnly" in plain.headers["Set-Cookie"]


def test_forwarded_headers_from_an_untrusted_peer_are_ignored(lone: ServiceProcess) -> None:
    auth = Authenticator(SECRET, login_ttl=600, session_ttl=3600)
    response = sign_in(
        requests.Session(), lone.url, auth.login_token("x"), **{"X-Forwarded-Proto": "https"}
    )
    assert response.status_code == 200, response.text
    assert "Secure" not in response.headers["Set-Cookie"]


def test_responses_carry_security_headers(stack: Stack) -> None:
    http = stack.sign_in()
    page = http.get(stack.gateway.url + "/", timeout=5)
    assert page.status_code == 200
    csp = page.headers["Content-Security-Policy"]
    for directive in (
        "default-src 'self'",
        "frame-ancestors 'none'",
        "object-src 'none'",
        "base-uri 'none'",
    ):
        assert directive in csp, csp
    assert page.headers["X-Content-Type-Options"] == "nosniff"
    assert page.headers["Referrer-Policy"] == "no-referrer"
    for path in ("/api/cameras", "/snapshot/cam-a.jpg"):
        response = http.get(stack.gateway.url + path, timeout=10)
        assert response.status_code == 200, path
        assert "no-store" in response.headers["Cache-Control"], path
        assert response.headers["X-Content-Type-Options"] == "nosniff"
    stream = Stream(stack.gateway.url + "/stream/cam-a", cookie_of(http))
    assert stream.status == 200
    assert "no-store" in stream.headers["cache-control"]
    stream.close()


# --- sessions that end ---------------------------------------------------------------------


def test_logout_is_a_post_that_revokes_the_session(stack: Stack) -> None:
    http = stack.sign_in()
    token = cookie_of(http)
    assert http.get(stack.gateway.url + "/logout", timeout=5).status_code == 405
    response = http.post(stack.gateway.url + "/logout", allow_redirects=False, timeout=10)
    assert response.status_code == 303
    assert SESSION_COOKIE not in http.cookies
    # The token itself is dead, on this replica and on the other one.
    for process in (stack.gateway, stack.replica):

        def refused(base: str = process.url) -> bool:
            response = requests.get(
                base + "/api/cameras", timeout=5, headers={"Authorization": f"Bearer {token}"}
            )
            return response.status_code == 401 and response.json()["reason"] == "revoked"

        process.wait_for(refused, 5, "the revoked token refused")


def test_open_streams_and_sockets_end_when_their_session_is_revoked(stack: Stack) -> None:
    http = stack.sign_in()
    cookie = cookie_of(http)
    stream = Stream(stack.gateway.url + "/stream/cam-a", cookie)
    on_replica = Stream(stack.replica.url + "/stream/cam-b", cookie)
    client = socket_client(stack.gateway.url, cookie)
    try:
        assert stream.status == on_replica.status == 200
        stream.part_headers()
        on_replica.part_headers()
        assert client.connected
        logout = http.post(stack.gateway.url + "/logout", allow_redirects=False, timeout=10)
        assert logout.status_code == 303
        assert stream.ends_within(5), "the stream outlived its revoked session"
        assert on_replica.ends_within(5), "the other replica's stream outlived the revocation"
        stack.gateway.wait_for(lambda: not client.connected, 5, "the socket disconnected")
    finally:
        stream.close()
        on_replica.close()
        client.disconnect()


def test_open_streams_end_when_their_session_expires(lone: ServiceProcess) -> None:
    auth = Authenticator(SECRET, login_ttl=600, session_ttl=10)
    http = requests.Session()
    assert sign_in(http, lone.url, auth.login_token("brief")).status_code == 200
    stream = Stream(lone.url + "/stream/cam-a", cookie_of(http))
    try:
        assert stream.status == 200
        stream.part_headers()
        assert stream.ends_within(20), "the stream outlived its session"
    finally:
        stream.close()


def test_a_login_link_works_once_across_replicas_and_restarts(
    stack: Stack, lone: ServiceProcess
) -> None:
    token = stack.link_token("once")
    assert sign_in(requests.Session(), stack.replica.url, token).status_code == 200
    again = sign_in(requests.Session(), stack.gateway.url, token)
    assert again.status_code == 401, again.text
    assert again.json()["reason"] == "reused"
    # `lone` started after the link was used: it learns of the use from Kafka.
    assert sign_in(requests.Session(), lone.url, token).status_code == 401


def test_login_tokens_stay_out_of_urls_and_logs(stack: Stack, lone: ServiceProcess) -> None:
    link = subprocess.run(
        [str(BIN / "gateway"), "login-url", "--base", "https://dash.example"],
        env={"GATEWAY_AUTH_SECRET": SECRET, "PATH": str(BIN)},
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout.strip()
    assert link.startswith("https://dash.example/login#token="), link
    token = link.split("#token=", 1)[1]
    page = requests.get(f"{lone.url}/login", timeout=5)
    assert page.status_code == 200
    assert "login.js" in page.text  # the page posts the fragment's token itself
    # A token in the query string is refused (and so stays unused).
    queried = requests.get(f"{lone.url}/login?token={token}", allow_redirects=False, timeout=5)
    assert queried.status_code == 400
    assert sign_in(requests.Session(), lone.url, token).status_code == 200
    time.sleep(0.5)
    assert "GET /login" in lone.log(None)  # the access log is on
    assert token not in lone.log(None)


def test_sign_ins_and_sign_outs_are_audited(stack: Stack) -> None:
    token = stack.link_token("audited-user")
    http = requests.Session()
    assert sign_in(http, stack.gateway.url, token).status_code == 200
    assert http.post(stack.gateway.url + "/logout", allow_redirects=False).status_code == 303
    stack.gateway.wait_for(
        lambda: any(
            r.get("msg") == "signed out" and r.get("subject") == "audited-user"
            for r in stack.gateway.log_records()
        ),
        5,
        "the sign-out audited",
    )
    signed_in = [
        r
        for r in stack.gateway.log_records()
        if r.get("msg") == "signed in" and r.get("subject") == "audited-user"
    ]
    assert len(signed_in) == 1
    assert signed_in[0]["client"] == "127.0.0.1"
    assert signed_in[0]["session"]
    assert token not in stack.gateway.log(None)


# --- scopes --------------------------------------------------------------------------------


def test_a_scoped_viewer_sees_only_its_cameras_and_cannot_replay(stack: Stack) -> None:
    http = stack.sign_in(cameras=["cam-a"], role="viewer")
    base = stack.gateway.url
    listed = [c["camera"] for c in http.get(base + "/api/cameras", timeout=5).json()["cameras"]]
    assert listed == ["cam-a"]
    for path in ("/stream/cam-b", "/kaf/cam-b", "/snapshot/cam-b.jpg"):
        assert http.get(base + path, timeout=5, stream=True).status_code == 404, path
    assert http.get(base + "/snapshot/cam-a.jpg", timeout=10).status_code == 200
    replay = http.get(base + "/stream/cam-a?from=-2s", timeout=5, stream=True)
    assert replay.status_code == 403
    seen: dict[str, set[str]] = {"cameras": set(), "wall": set(), "detection": set()}
    client = socketio.Client(reconnection=False)
    client.on("cameras", lambda data: seen["cameras"].update(c["camera"] for c in data))
    client.on("wall_frame", lambda data: seen["wall"].add(data["camera"]))
    client.on("detection", lambda data: seen["detection"].add(data["camera"]))
    client.connect(
        base,
        headers={"Cookie": f"{SESSION_COOKIE}={cookie_of(http)}"},
        transports=["websocket"],
        wait_timeout=10,
    )
    try:
        client.call("wall", {"on": True}, timeout=10)
        for _ in range(10):
            stack.cameras.detection("cam-b")
            stack.cameras.detection("cam-a")
            if seen["detection"] and seen["wall"]:
                break
            time.sleep(0.5)
        time.sleep(2)  # room for anything that should not arrive
        assert seen == {"cameras": {"cam-a"}, "wall": {"cam-a"}, "detection": {"cam-a"}}
    finally:
        client.disconnect()


# --- limits --------------------------------------------------------------------------------


def test_streams_are_capped_per_session_and_per_gateway(stack: Stack) -> None:
    first, second = stack.sign_in(), stack.sign_in()
    base = stack.gateway.url
    before = metrics(stack.gateway)
    streams = [Stream(f"{base}/stream/cam-a", cookie_of(first)) for _ in range(2)]
    try:
        over = Stream(f"{base}/stream/cam-a", cookie_of(first))
        assert over.status == 429
        assert int(over.headers["retry-after"]) > 0
        streams += [Stream(f"{base}/stream/cam-b", cookie_of(second)) for _ in range(2)]
        assert [s.status for s in streams] == [200] * 4
        third = stack.sign_in()
        full = Stream(f"{base}/stream/cam-a", cookie_of(third))
        assert full.status == 429
        after = metrics(stack.gateway)
        for limit in ("streams_per_session", "streams"):
            hits = metric_value(after, "gateway_limit_hits_total", limit=limit)
            assert hits == metric_value(before, "gateway_limit_hits_total", limit=limit) + 1
    finally:
        for stream in streams:
            stream.close()


def test_one_session_cannot_take_every_replay_slot(stack: Stack) -> None:
    http = stack.sign_in(role="operator")
    base = stack.gateway.url
    time.sleep(1)
    replay = Stream(f"{base}/stream/cam-a?from=-3s", cookie_of(http))
    try:
        assert replay.status == 200
        second = Stream(f"{base}/stream/cam-b?from=-3s", cookie_of(http))
        assert second.status == 429
        other = stack.sign_in(role="operator")
        allowed = Stream(f"{base}/stream/cam-b?from=-3s", cookie_of(other))
        assert allowed.status == 200
        allowed.close()
    finally:
        replay.close()


def test_login_attempts_per_client_are_limited(lone: ServiceProcess) -> None:
    # Five attempts a minute: other tests' sign-ins on `lone` took some of them already.
    answers = [sign_in(requests.Session(), lone.url, f"forged-{i}") for i in range(7)]
    statuses = [answer.status_code for answer in answers]
    assert 429 in statuses, statuses
    first = statuses.index(429)
    assert set(statuses[:first]) <= {401}, statuses
    assert set(statuses[first:]) == {429}, statuses
    assert int(answers[first].headers["Retry-After"]) > 0
    hits = metric_value(metrics(lone), "gateway_limit_hits_total", limit="login_attempts")
    assert hits == len(statuses) - first


def test_the_engineio_handshake_needs_a_session(stack: Stack) -> None:
    base = stack.gateway.url
    before = metric_value(
        metrics(stack.gateway), "gateway_limit_hits_total", limit="socketio_unauthenticated"
    )
    refused = requests.get(f"{base}/socket.io/?EIO=4&transport=polling", timeout=5)
    assert refused.status_code == 401
    assert '"sid"' not in refused.text
    after = metric_value(
        metrics(stack.gateway), "gateway_limit_hits_total", limit="socketio_unauthenticated"
    )
    assert after == before + 1
    http = stack.sign_in()
    accepted = http.get(f"{base}/socket.io/?EIO=4&transport=polling", timeout=5)
    assert accepted.status_code == 200
    assert '"sid"' in accepted.text


def test_an_engineio_session_closes_after_a_refused_connect(stack: Stack) -> None:
    base = stack.gateway.url
    http = stack.sign_in()
    opened = http.get(f"{base}/socket.io/?EIO=4&transport=polling", timeout=5)
    sid = json.loads(opened.text[1:])["sid"]
    url = f"{base}/socket.io/?EIO=4&transport=polling&sid={sid}"
    assert http.post(base + "/logout", allow_redirects=False, timeout=10).status_code == 303
    # The browser kept the old cookie's value; the server must refuse the revoked session.
    http.cookies.clear()
    assert http.post(url, data="40", timeout=5).status_code == 200
    answer = http.get(url, timeout=10).text
    assert answer.startswith("44"), answer  # CONNECT_ERROR
    stack.gateway.wait_for(
        lambda: http.get(url, timeout=5).status_code == 400, 10, "the Engine.IO session closed"
    )


def test_socketio_messages_over_the_size_limit_are_refused(stack: Stack) -> None:
    base = stack.gateway.url
    http = stack.sign_in()
    opened = http.get(f"{base}/socket.io/?EIO=4&transport=polling", timeout=5)
    sid = json.loads(opened.text[1:])["sid"]
    url = f"{base}/socket.io/?EIO=4&transport=polling&sid={sid}"
    assert http.post(url, data="40", timeout=5).status_code == 200
    big = '42["wall",{"pad":"' + "x" * 100_000 + '"}]'
    assert http.post(url, data=big, timeout=5).status_code in (400, 413)
    assert (
        metric_value(metrics(stack.gateway), "gateway_limit_hits_total", limit="message_size") >= 1
    )


# --- records from Kafka --------------------------------------------------------------------


def test_toggling_the_wall_leaves_no_camera_read_behind(stack: Stack) -> None:
    http = stack.sign_in()
    client = socket_client(stack.gateway.url, cookie_of(http))
    try:
        for _ in range(20):
            client.call("wall", {"on": True}, timeout=10)
            client.call("wall", {"on": False}, timeout=10)
    finally:
        client.disconnect()
    # Partitions are let go half a second after their last viewer (plus a maintenance tick).
    stack.gateway.wait_for(
        lambda: (
            stack.gateway.metric("gateway_camera_reads") == 0
            and stack.gateway.metric(
                "gateway_partitions_assigned", topic=stack.prefix + "video-frames"
            )
            == 0
        ),
        15,
        "every camera read released",
    )


@pytest.mark.parametrize(
    "camera", ["cam-x\r\nX-Injected: 1", "cäm", "../../etc", "a" * 200], ids=repr
)
def test_camera_ids_from_kafka_are_checked_against_the_contract(stack: Stack, camera: str) -> None:
    topic = stack.prefix + "video-cameras"
    counted = lambda: stack.gateway.metric("gateway_bad_messages_total", topic=topic)  # noqa: E731
    before = counted()
    stack.cameras.status(camera, 0, key=camera.encode())
    stack.cameras.producer.flush(5)
    stack.gateway.wait_for(lambda: counted() > before, 10, "the bad status counted")
    http = stack.sign_in()
    listed = [c["camera"] for c in http.get(stack.gateway.url + "/api/cameras").json()["cameras"]]
    assert camera not in listed
    response = http.get(
        f"{stack.gateway.url}/stream/{urllib.parse.quote(camera, safe='')}", timeout=5, stream=True
    )
    assert response.status_code == 404
    assert "X-Injected" not in response.headers


def test_bad_frame_keys_reach_no_stream_header_and_no_metric(stack: Stack) -> None:
    http = stack.sign_in()
    stream = Stream(stack.gateway.url + "/stream/cam-a", cookie_of(http))
    try:
        assert stream.status == 200
        stream.part_headers()
        # Records on cam-a's partition under keys that are not cameras of the directory.
        for key in [b"cam-x\r\nX-Injected: 1", "cäm".encode(), b"\xff\xfe"] + [
            f"fake-{i}".encode() for i in range(50)
        ]:
            stack.cameras.frame(key, CAMERAS["cam-a"])
        stack.cameras.producer.flush(5)
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            headers = stream.part_headers()
            assert "X-Injected" not in headers
            assert "X-Camera: cam-a\r\n" in headers + "\r\n"
        text = metrics(stack.gateway)
        series = {
            m.group(1)
            for m in re.finditer(r'gateway_frames_received_total\{camera="([^"]*)"', text)
        }
        assert series <= set(CAMERAS), series
    finally:
        stream.close()
