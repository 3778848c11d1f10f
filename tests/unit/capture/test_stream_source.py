"""A stream read through OpenCV's FFmpeg backend, with a stand-in for cv2.VideoCapture (the
real one is read from GStreamer's RTSP server in tests/cameras/test_rtsp.py)."""

from __future__ import annotations

import time

import numpy as np
from rts_capture.sources.opencv import VideoCaptureSource

FRAME = np.zeros((4, 4, 3), np.uint8)


class Capture:
    """Answers each read after the given delay, always with a frame: as OpenCV does when
    FFmpeg's read timeout ends a read and it hands out the frame FFmpeg's parser held."""

    def __init__(self, delays: list[float]) -> None:
        self.delays = delays

    def read(self) -> tuple[bool, np.ndarray]:
        time.sleep(self.delays.pop(0))
        return True, FRAME

    def release(self) -> None:
        pass


def test_a_frame_from_a_read_that_lasted_the_read_timeout_is_no_frame() -> None:
    stream = VideoCaptureSource(
        Capture([0.0, 0.3, 0.0]), "url", finite=False, paced=False, fps=None, read_timeout=0.2
    )
    assert stream.read() is FRAME
    assert stream.read() is None  # the stream sent nothing for the timeout: it is lost
    assert stream.read() is FRAME


def test_without_a_read_timeout_a_slow_read_is_still_a_frame() -> None:
    camera = VideoCaptureSource(Capture([0.3]), "camera", finite=False, paced=False, fps=None)
    assert camera.read() is FRAME
