"""Routes through Flask's test client, with a Gateway whose consumers are never started."""

import json
from collections.abc import Iterator

import pytest
from flask import Response
from flask.testing import FlaskClient
from rts_common.contracts import VIDEO_CAMERAS, VIDEO_FRAMES
from rts_devstack.processes import http_get
from rts_gateway.service import Gateway
from rts_gateway.video.http import close_with
from werkzeug.test import EnvironBuilder

from tests.unit.gateway.conftest import MakeGateway
from tests.unit.gateway.helpers import batch_of, frame_message, status_message


def deliver_frame(gateway: Gateway, seq: int) -> None:
    batch = batch_of(VIDEO_FRAMES, [frame_message("front", seq)], gateway.metrics)
    gateway.video.hub.on_batch(batch)


@pytest.fixture
def ops(make_gateway: MakeGateway) -> Iterator[tuple[Gateway, str]]:
    """A gateway (one camera) with its ops endpoints served on a free port."""
    gateway = make_gateway(ops_host="127.0.0.1", ops_port=0)
    gateway.video.directory.on_batch(
        batch_of(VIDEO_CAMERAS, [status_message("front", 0)], gateway.metrics)
    )
    gateway.video.directory.assigned({0: 1})
    server = gateway.serve_ops()
    yield gateway, f"http://127.0.0.1:{server.port}"
    server.stop()


def test_health_is_ok_and_readiness_needs_kafka_on_the_ops_port(ops: tuple[Gateway, str]) -> None:
    gateway, base = ops
    assert http_get(base + "/healthz") == (200, '{"status": "ok"}')
    status, body = http_get(base + "/readyz")
    assert status == 503
    assert json.loads(body)["kafka"] is False
    gateway.bridge.kafka_ok = True
    assert http_get(base + "/readyz")[0] == 200
    gateway.begin_shutdown()
    assert http_get(base + "/readyz")[0] == 503


def test_probes_and_metrics_are_not_on_the_public_port(client: FlaskClient) -> None:
    for path in ("/healthz", "/readyz", "/metrics"):
        assert client.get(path).status_code == 404, path


def test_unknown_camera_is_a_json_404_listing_known_cameras(
    client: FlaskClient, gateway: Gateway
) -> None:
    for path in ("/stream/garage", "/kaf/garage", "/snapshot/garage.jpg"):
        response = client.get(path)
        assert response.status_code == 404, path
        assert response.json["cameras"] == ["front"]
    assert gateway.video.hub.describe()["partitions"] == []


def test_snapshot_serves_the_newest_frame_or_404_when_none_arrives(
    client: FlaskClient, gateway: Gateway
) -> None:
    response = client.get("/snapshot/front.jpg")
    assert response.status_code == 404
    assert "no frame" in response.json["error"]
    gateway.video.hub.open("front")  # keep the partition read so the frame stays current
    deliver_frame(gateway, 5)
    response = client.get("/snapshot/front.jpg")
    assert response.status_code == 200
    assert response.content_type == "image/jpeg"
    assert response.headers["X-Frame-Seq"] == "5"
    assert response.data.startswith(b"\xff\xd8")


def test_stream_rejects_bad_query_options(client: FlaskClient) -> None:
    assert client.get("/stream/front?fps=fast").status_code == 400
    assert client.get("/stream/front?fps=500").status_code == 400
    response = client.get("/stream/front?from=yesterday")
    assert response.status_code == 400
    assert "-30s" in response.json["error"]


def test_stream_and_kaf_answer_multipart_and_start_one_read(
    client: FlaskClient, gateway: Gateway
) -> None:
    # Werkzeug's test client reads the first part before returning: have one ready.
    gateway.video.hub.open("front")
    deliver_frame(gateway, 1)
    for path in ("/stream/front", "/kaf", "/kaf/front"):
        response = client.get(path, buffered=False)
        assert response.status_code == 200
        assert response.content_type == "multipart/x-mixed-replace; boundary=frame"
        assert response.headers["X-Accel-Buffering"] == "no"
        assert next(response.response).startswith(b"--frame\r\n")
        response.close()
    assert gateway.video.hub.describe() == {
        "viewers": 1,
        "partitions": [0],
        "cameras": {"front": 1},
    }


def test_kaf_without_cameras_says_so(make_gateway: MakeGateway) -> None:
    response = make_gateway().app.test_client().get("/kaf")
    assert response.status_code == 404
    assert "no camera" in response.json["error"]


def test_api_cameras_lists_status_and_local_viewers(client: FlaskClient, gateway: Gateway) -> None:
    gateway.video.hub.open("front")
    listed = client.get("/api/cameras").json["cameras"]
    assert len(listed) == 1
    camera = listed[0]
    assert camera["camera"] == "front"
    assert camera["viewers_here"] == 1
    assert camera["stream"] == "/stream/front"
    assert camera["source_up"] is True
    assert camera["status_age_seconds"] < 5


def test_metrics_are_prometheus_text(ops: tuple[Gateway, str]) -> None:
    status, body = http_get(ops[1] + "/metrics")
    assert status == 200
    assert "gateway_frames_skipped_total" in body
    assert "rts_build_info{" in body


def test_unknown_paths_are_json_404(client: FlaskClient) -> None:
    response = client.get("/nowhere")
    assert response.status_code == 404
    assert response.json == {"error": "not found"}


def test_bad_times_are_refused_before_any_kafka_read_is_made(
    client: FlaskClient, gateway: Gateway
) -> None:
    loops = len(gateway.bridge.loops)
    nines = "9" * 400
    for path in (
        f"/stream/front?from=-{nines}s",
        "/stream/front?from=-99999999h",
        "/stream/front?from=0001-01-01T00:00:00Z",
        f"/snapshot/front.jpg?at=-{nines}s",
        "/snapshot/front.jpg?at=tomorrow",
        "/clip/front?from=-10s&to=-20s",
        "/clip/front?from=-99999999h&to=now",
        "/clip/front?from=-2h",  # longer than clip_max_seconds
        "/clip/front",
        f"/api/timeline/front?from=-{nines}ms",
        "/api/timeline/front?from=-2d",
        "/api/timeline/front?kinds=cars",
        "/api/timeline/front?from=-25h",
        "/api/timeline/front?step=10",
        "/api/timeline/front?step=-1000",
        f"/api/timeline/front?step={nines}",
    ):
        response = client.get(path)
        assert response.status_code == 400, path
        assert response.json["error"], path
    assert len(gateway.bridge.loops) == loops
    assert gateway.video.request_reads.open == 0


def test_reads_into_the_past_are_refused_with_retry_after_past_the_process_limit(
    make_gateway: MakeGateway,
) -> None:
    gateway = make_gateway(max_replays=0)
    directory = gateway.video.directory
    directory.on_batch(batch_of(VIDEO_CAMERAS, [status_message("front", 0)], gateway.metrics))
    client = gateway.app.test_client()
    for path in (
        "/stream/front?from=-5s",
        "/snapshot/front.jpg?at=-5s",
        "/clip/front?from=-10s",
        "/api/timeline/front",
    ):
        response = client.get(path)
        assert response.status_code == 429, path
        assert response.headers["Retry-After"] == "5"
    refused = gateway.metrics.registry.get_sample_value(
        "gateway_kafka_reads_refused_total", {"kind": "clip"}
    )
    assert refused == 1


def test_a_streamed_body_closed_before_its_first_byte_still_releases_its_read() -> None:
    closed: list[str] = []

    def body() -> Iterator[bytes]:
        try:
            yield b"never sent"
        finally:
            closed.append("generator")  # never runs: the generator never started

    response = close_with(Response(body(), direct_passthrough=True), lambda: closed.append("read"))
    iterable = response(EnvironBuilder("/clip/front").get_environ(), lambda *_args: None)
    iterable.close()  # type: ignore[attr-defined]
    assert closed == ["read"]
    answered = close_with(Response(b"{}"), lambda: closed.append("answer"))
    answered(EnvironBuilder("/").get_environ(), lambda *_args: None).close()  # type: ignore[attr-defined]
    assert closed == ["read", "answer"]


class Stuck:
    name = "frames"

    def problem(self, now: float) -> str:
        return "no poll for 75s"


def test_health_fails_when_a_part_is_stuck_and_readiness_says_which(
    ops: tuple[Gateway, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    gateway, base = ops
    gateway.bridge.kafka_ok = True
    assert http_get(base + "/healthz")[0] == 200
    monkeypatch.setattr(gateway.video, "components", lambda: [Stuck()])
    status, body = http_get(base + "/healthz")
    assert status == 503
    assert json.loads(body) == {"status": "failing", "problems": {"frames": "no poll for 75s"}}
    status, body = http_get(base + "/readyz")
    assert status == 503
    assert json.loads(body)["problems"] == {"frames": "no poll for 75s"}
    up = gateway.metrics.registry.get_sample_value("gateway_component_up", {"component": "frames"})
    assert up == 0
