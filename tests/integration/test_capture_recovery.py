"""A source that goes away or hangs: readiness flips, the metric says so, capture recovers."""

import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from rts_capture.sample import write_video

from tests.fixtures.capture import Launcher
from tests.fixtures.http_camera import HttpCamera
from tests.fixtures.processes import ServiceProcess


def _down(capture: ServiceProcess) -> bool:
    return capture.get("/readyz")[0] == 503 and capture.metric("capture_source_up") == 0


def _up(capture: ServiceProcess) -> bool:
    return capture.ready() and capture.metric("capture_source_up") == 1


def test_a_file_that_goes_away_flips_readiness_and_recovers_when_it_is_back(
    launch_capture: Launcher, tmp_path: Path
) -> None:
    original = write_video(tmp_path / "original.mp4", frames=10, fps=20, size=(160, 120))
    clip = tmp_path / "clip.mp4"
    shutil.copy(original, clip)
    capture = launch_capture(
        "--source",
        str(clip),
        *"--camera-id cam-gone --loop --no-faces --reconnect-max 1".split(),
    )
    capture.wait_for(lambda: _up(capture), 10, "the source to be up")

    clip.unlink()  # the next loop cannot reopen it
    capture.wait_for(lambda: _down(capture), 5, "readiness to turn false")
    assert capture.readiness()["source"] == "open_failed"
    assert capture.metric("capture_source_failures_total", reason="open_failed") >= 1
    before = capture.metric("capture_frames_total")

    shutil.copy(original, clip)
    capture.wait_for(lambda: _up(capture), 5, "the source to recover")
    capture.wait_for(lambda: capture.metric("capture_frames_total") > before + 5, 5, "new frames")
    assert capture.metric("capture_source_reopens_total") >= 1
    assert capture.terminate() == 0
    lost = [r for r in capture.log_records() if r.get("msg") == "source lost"]
    assert lost
    assert "does not exist" in lost[0]["detail"]


@pytest.fixture
def mjpeg_camera() -> Iterator[HttpCamera]:
    camera = HttpCamera()
    yield camera
    camera.close()


def test_a_stream_that_hangs_flips_readiness_recovers_and_still_stops_on_sigterm(
    launch_capture: Launcher, mjpeg_camera: HttpCamera
) -> None:
    capture = launch_capture(
        "--source",
        mjpeg_camera.url(),
        *"--camera-id cam-http --no-faces --stall-timeout 1".split(),
        *"--open-timeout 2 --reconnect-max 1".split(),
    )
    capture.wait_for(lambda: _up(capture), 15, "the stream to be up")
    assert capture.metric("capture_frames_total") > 0

    mjpeg_camera.silent.set()
    took = capture.wait_for(lambda: _down(capture), 6, "readiness to turn false")
    assert took < 5
    assert (
        capture.metric("capture_source_failures_total", reason="read_failed")
        + capture.metric("capture_source_failures_total", reason="stalled")
        >= 1
    )

    mjpeg_camera.silent.clear()
    capture.wait_for(lambda: _up(capture), 10, "the stream to recover")
    before = capture.metric("capture_frames_total")
    capture.wait_for(lambda: capture.metric("capture_frames_total") > before, 5, "new frames")

    mjpeg_camera.silent.set()
    capture.wait_for(lambda: _down(capture), 6, "readiness to turn false again")
    started = time.monotonic()
    assert capture.terminate() == 0
    assert time.monotonic() - started < 5
