"""The probe reads the gateway's MJPEG parts, measures each new frame once, signs in,
and tells the gateway it is a probe."""

from __future__ import annotations

import io
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from rts_common.contracts import FrameMeta
from rts_common.signin import Authenticator
from rts_gateway.video import mjpeg
from rts_gateway.video.mjpeg import Frame
from rts_probe.metrics import ProbeMetrics
from rts_probe.mjpeg import StreamError, boundary_of, parts
from rts_probe.probe import Probe
from rts_probe.settings import ProbeSettings

SECRET = "a-test-secret-of-enough-length"
JPEG = b"\xff\xd8" + b"\x00" * 500 + b"--frame\r\n" + b"\xff\xd9"


def frame(seq: int, ts_ns: int, camera: str = "lobby") -> Frame:
    return Frame(FrameMeta(camera, seq, ts_ns, 64, 48), JPEG, partition=0, offset=seq)


def test_parts_of_the_gateways_own_encoding_are_read_by_their_length() -> None:
    body = b"".join(mjpeg.part(frame(n, 1_000 + n)) for n in range(3))
    read = list(parts(io.BytesIO(body), mjpeg.BOUNDARY))
    # The JPEG contains the boundary text; reading by Content-Length is not fooled.
    assert [(p.camera, p.seq, p.ts_ns, p.jpeg) for p in read] == [
        ("lobby", n, 1_000 + n, JPEG) for n in range(3)
    ]


def test_a_stream_cut_inside_a_part_ends_without_a_partial_frame() -> None:
    body = mjpeg.part(frame(1, 1)) + mjpeg.part(frame(2, 2))[:-100]
    assert [p.seq for p in parts(io.BytesIO(body), mjpeg.BOUNDARY)] == [1]


def test_what_is_not_the_gateways_mjpeg_is_refused() -> None:
    with pytest.raises(StreamError):
        list(parts(io.BytesIO(b"<html>sign in first</html>\r\n"), mjpeg.BOUNDARY))
    body = b"--frame\r\nContent-Length: 2\r\nX-Frame-Seq: 1\r\n\r\nab\r\n"
    with pytest.raises(StreamError, match="x-frame-timestamp"):
        list(parts(io.BytesIO(body), "frame"))
    assert boundary_of(mjpeg.CONTENT_TYPE) == mjpeg.BOUNDARY
    with pytest.raises(StreamError):
        boundary_of("application/json")


class FakeGateway:
    """Serves /api/cameras and an MJPEG stream; records what the probe sent.

    The stream sends one frame, the same frame again (as the gateway's keep-alive
    does) and a second frame, then ends.
    """

    def __init__(self, now: float) -> None:
        self.requests: list[tuple[str, dict[str, str]]] = []
        self.auth = Authenticator(SECRET, login_ttl=60, session_ttl=600)
        self.now = now
        gateway = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                gateway.requests.append((self.path, dict(self.headers.items())))
                token = (self.headers.get("Authorization") or "").removeprefix("Bearer ")
                try:
                    gateway.auth.check_session(token)
                except Exception:
                    self.send_response(401)
                    self.end_headers()
                    return
                if self.path == "/api/cameras":
                    body = b'{"cameras": [{"camera": "lobby"}]}'
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                    return
                self.send_response(200)
                self.send_header("Content-Type", mjpeg.CONTENT_TYPE)
                self.end_headers()
                first = frame(7, int((gateway.now - 0.25) * 1e9))
                second = frame(8, int((gateway.now - 0.5) * 1e9))
                for sent in (first, first, second):
                    self.wfile.write(mjpeg.part(sent))
                self.close_connection = True

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def gateway() -> Iterator[FakeGateway]:
    fake = FakeGateway(now=1_800_000_000.0)
    yield fake
    fake.close()


def sample(metrics: ProbeMetrics, name: str, **labels: str) -> float:
    value = metrics.registry.get_sample_value(name, labels)
    return 0.0 if value is None else value


def test_the_probe_signs_in_says_it_is_a_probe_and_measures_each_new_frame_once(
    gateway: FakeGateway,
) -> None:
    settings = ProbeSettings(
        gateway_url=gateway.url, auth_secret=SECRET, fps=1.5, cameras_interval=1, reconnect_max=1
    )
    metrics = ProbeMetrics.create()
    stop = threading.Event()
    probe = Probe(settings, metrics, stop, clock=lambda: gateway.now)
    runner = threading.Thread(target=probe.run, daemon=True)
    runner.start()
    try:
        for _ in range(100):
            if sample(metrics, "probe_frames_total", camera="lobby") >= 2:
                break
            stop.wait(0.05)
        ready, details = probe.readiness()
    finally:
        stop.set()
        runner.join(10)
    assert ready, details
    assert details["cameras"] == ["lobby"]
    streams = [(path, headers) for path, headers in gateway.requests if path.startswith("/stream")]
    assert streams
    path, headers = streams[0]
    assert path == "/stream/lobby?fps=1.5"
    assert headers["X-Viewer-Kind"] == "probe"
    assert headers["Authorization"].startswith("Bearer ")
    # Each stream: frames 7 and 8 measured (0.25 s and 0.5 s old), the repeated 7 not
    # (with it, the mean would be 1/3 s).
    count = sample(metrics, "probe_frame_latency_seconds_count", camera="lobby")
    total = sample(metrics, "probe_frame_latency_seconds_sum", camera="lobby")
    assert count >= 2
    assert total / count == pytest.approx(0.375, abs=1e-3)
    assert sample(metrics, "probe_frame_latency_seconds_bucket", camera="lobby", le="0.25") > 0
    assert sample(metrics, "probe_stream_errors_total", camera="lobby", reason="ended") >= 1


def test_without_the_secret_the_gateway_refuses_and_the_probe_is_not_ready(
    gateway: FakeGateway,
) -> None:
    settings = ProbeSettings(gateway_url=gateway.url, cameras_interval=1)
    metrics = ProbeMetrics.create()
    stop = threading.Event()
    probe = Probe(settings, metrics, stop)
    runner = threading.Thread(target=probe.run, daemon=True)
    runner.start()
    try:
        for _ in range(100):
            if gateway.requests:
                break
            stop.wait(0.05)
        stop.wait(0.2)
        ready, details = probe.readiness()
    finally:
        stop.set()
        runner.join(10)
    assert not ready
    assert "401" in details["error"]
    assert "Authorization" not in gateway.requests[0][1]
