"""HTTP cameras: an MJPEG stream and a snapshot URL polled at a rate, both behind a
password, from real HTTP servers on the loopback serving numbered frames."""

from __future__ import annotations

import statistics
from collections.abc import Iterator

import cv2
import numpy as np
import pytest
from rts_common.contracts import VIDEO_FRAMES
from rts_devstack.cameras import draw_frame, read_marker

from tests.cameras.conftest import CLIP_SIZE, PASSWORD, USER
from tests.fixtures.capture import Launcher, read_topic
from tests.fixtures.http_camera import HttpCamera
from tests.fixtures.kafka import KafkaUnderTest

FAST = "--no-faces --stall-timeout 2 --open-timeout 4 --reconnect-max 1".split()


def _jpeg(n: int) -> bytes:
    return bytes(cv2.imencode(".jpg", draw_frame(n, *CLIP_SIZE))[1])


def _marker(payload: bytes) -> int | None:
    return read_marker(cv2.imdecode(np.frombuffer(payload, np.uint8), cv2.IMREAD_COLOR))


@pytest.fixture
def http_camera() -> Iterator[HttpCamera]:
    camera = HttpCamera(_jpeg, fps=15, credentials=(USER, PASSWORD))
    yield camera
    camera.close()


def test_an_mjpeg_camera_behind_a_password(
    kafka: KafkaUnderTest, topic_prefix: str, launch_capture: Launcher, http_camera: HttpCamera
) -> None:
    capture = launch_capture(
        "--source", http_camera.url("/video.mjpg"), "--camera-id", "cam-mjpeg", *FAST
    )
    records = read_topic(kafka, topic_prefix + VIDEO_FRAMES.name, count=30, timeout=40)
    markers = [_marker(r.value()) for r in records]
    assert len(markers) == 30
    assert None not in markers
    assert markers == sorted(set(markers))
    assert capture.terminate() == 0
    assert PASSWORD not in capture.log(None)


def test_a_snapshot_url_is_polled_at_the_rate_asked(
    kafka: KafkaUnderTest, topic_prefix: str, launch_capture: Launcher, http_camera: HttpCamera
) -> None:
    capture = launch_capture(
        "--source",
        http_camera.url("/snapshot.jpg"),
        *"--camera-id cam-snap --snapshot --fps 5".split(),
        *FAST,
    )
    records = read_topic(kafka, topic_prefix + VIDEO_FRAMES.name, count=15, timeout=40)
    assert capture.terminate() == 0
    markers = [_marker(r.value()) for r in records]
    assert len(markers) == 15
    # One request, one frame: the first answered the start-up check, the others in order.
    assert markers == list(range(markers[0], markers[0] + 15))
    gaps = [b - a for a, b in zip(http_camera.requests[1:], http_camera.requests[2:], strict=False)]
    assert 0.15 < statistics.median(gaps) < 0.3, gaps
    assert PASSWORD not in capture.log(None)


def test_a_snapshot_url_with_a_wrong_password_says_so(
    launch_capture: Launcher, http_camera: HttpCamera
) -> None:
    capture = launch_capture(
        "--source",
        http_camera.url("/snapshot.jpg", password="wrong"),
        *"--camera-id cam-snap-pw --snapshot".split(),
        *FAST,
    )
    capture.wait_for(
        lambda: capture.metric("capture_source_failures_total", reason="open_failed") >= 2,
        30,
        "failed attempts",
    )
    assert capture.terminate() == 0
    lost = [r for r in capture.log_records() if r.get("msg", "").startswith("source")]
    assert "refused the user name or password" in lost[0]["detail"]
    assert "wrong" not in capture.log(None)
