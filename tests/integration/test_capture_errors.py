"""Capture refuses a source it cannot use at start-up: a clear message, no traceback."""

import socket
from pathlib import Path

import pytest

from tests.fixtures.capture import Launcher


def _refused(capture_logs: str) -> str:
    assert "Traceback" not in capture_logs
    return capture_logs


def test_a_missing_file_is_a_clear_error(launch_capture: Launcher, tmp_path: Path) -> None:
    missing = tmp_path / "gone.mp4"
    capture = launch_capture("--source", str(missing), "--camera-id", "cam-x")
    assert capture.wait_exit(15) == 1
    logs = _refused(capture.log(None))
    assert f"video file {missing} does not exist" in logs
    assert "pass --source" in logs


def test_a_corrupt_file_is_a_clear_error(launch_capture: Launcher, tmp_path: Path) -> None:
    corrupt = tmp_path / "corrupt.mp4"
    corrupt.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 64)
    capture = launch_capture("--source", str(corrupt), "--camera-id", "cam-x")
    assert capture.wait_exit(15) == 1
    assert f"video file {corrupt} cannot be decoded" in _refused(capture.log(None))


def test_no_source_and_no_camera_says_what_to_pass(launch_capture: Launcher) -> None:
    # No --source means camera 0, as in the baseline. Restricting OpenCV to its FFmpeg
    # backend (which opens no cameras) makes "no camera present" hold on any machine.
    capture = launch_capture(env={"OPENCV_VIDEOIO_PRIORITY_LIST": "FFMPEG"})
    assert capture.wait_exit(15) == 1
    logs = _refused(capture.log(None))
    assert "no camera at index 0" in logs
    assert "'test' for the built-in test pattern" in logs


@pytest.mark.parametrize(
    ("flag", "value", "expected"),
    [
        ("--jpeg-quality", "5", "--jpeg-quality / CAPTURE_JPEG_QUALITY"),
        ("--camera-id", "a/b", "--camera-id / CAPTURE_CAMERA_ID"),
    ],
)
def test_a_bad_setting_exits_with_a_usage_error(
    launch_capture: Launcher, flag: str, value: str, expected: str
) -> None:
    capture = launch_capture("--source", "test", flag, value)
    assert capture.wait_exit(15) == 2
    assert expected in _refused(capture.log(None))


def test_an_ops_port_in_use_is_a_clear_error(launch_capture: Launcher) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        capture = launch_capture("--source", "test", "--ops-port", str(port))
        assert capture.wait_exit(15) == 1
    assert f"cannot serve /metrics on port {port}" in _refused(capture.log(None))
