"""Cameras, video files and RTSP/HTTP streams through OpenCV's VideoCapture."""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Any

import cv2

from rts_capture.sources import Image, Source, SourceError
from rts_capture.sources.network import diagnose

log = logging.getLogger(__name__)

NEED_A_SOURCE = (
    "pass --source (or CAPTURE_SOURCE): 'test' for the built-in test pattern, "
    "a video file, an rtsp:// or http:// URL, or the index of a camera that is present"
)
# What a file claims as its frame rate is sometimes 0 or nonsense (1000 for some
# variable-rate files); pace those at a common video rate instead.
FALLBACK_FPS = 25.0


class VideoCaptureSource(Source):
    def __init__(
        self,
        capture: Any,
        kind: str,
        *,
        finite: bool,
        paced: bool,
        fps: float | None,
        read_timeout: float | None = None,
    ) -> None:
        """`read_timeout`: FFmpeg's, for a stream: a read that lasts it gets no new frame."""
        self._capture = capture
        self.kind = kind
        self.finite = finite
        self.paced = paced
        self.fps = fps
        self._read_timeout = read_timeout

    def read(self) -> Image | None:
        started = time.monotonic()
        ok, frame = self._capture.read()
        if not ok or frame is None:
            return None
        if self._read_timeout is not None and time.monotonic() - started >= self._read_timeout:
            # FFmpeg's read timeout ended this read, and what OpenCV returns then is the
            # frame FFmpeg's parser held back (the last one before the silence), one per
            # timed-out read. Counting it as a frame made a stalled stream look up again
            # within 0.1 s of being found stalled, over and over, each time an offline and
            # an online event. The stream sent nothing for the timeout: it is lost.
            return None
        image: Image = frame
        return image

    def close(self) -> None:
        self._capture.release()


def open_camera(index: int, read_timeout: float) -> Source:
    capture = cv2.VideoCapture(index)
    if not capture.isOpened():
        capture.release()
        raise SourceError(f"no camera at index {index}: {NEED_A_SOURCE}")
    # Drivers queue several frames by default; a live view wants the newest one.
    capture.set(cv2.CAP_PROP_BUFFERSIZE, 1)
    # Honoured by backends that support it; the reader's watchdog covers the others.
    capture.set(cv2.CAP_PROP_READ_TIMEOUT_MSEC, read_timeout * 1000)
    return VideoCaptureSource(capture, "camera", finite=False, paced=False, fps=None)


def open_file(path: Path) -> Source:
    if not path.exists():
        raise SourceError(f"video file {path} does not exist; {NEED_A_SOURCE}")
    if not path.is_file():
        raise SourceError(f"{path} is not a file; {NEED_A_SOURCE}")
    if not os.access(path, os.R_OK):
        raise SourceError(f"video file {path} is not readable (permissions)")
    capture = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
    if not capture.isOpened():
        capture.release()
        raise SourceError(
            f"video file {path} cannot be decoded: corrupt, truncated, or a format "
            "OpenCV's FFmpeg does not read"
        )
    fps = float(capture.get(cv2.CAP_PROP_FPS) or 0.0)
    if not 1.0 <= fps <= 240.0:
        log.warning(
            "file has no usable frame rate; pacing it at a fallback rate",
            extra={"path": str(path), "reported_fps": fps, "fps": FALLBACK_FPS},
        )
        fps = FALLBACK_FPS
    return VideoCaptureSource(capture, "file", finite=True, paced=True, fps=fps)


def open_url(
    url: str, open_timeout: float, read_timeout: float, rtsp_transport: str = "tcp"
) -> Source:
    # OpenCV hands this variable's options to FFmpeg's demuxer at every open (one process
    # captures one camera, so a process-wide setting is the camera's). FFmpeg's default
    # tries UDP first and falls back to TCP only after a timeout.
    os.environ["OPENCV_FFMPEG_CAPTURE_OPTIONS"] = f"rtsp_transport;{rtsp_transport}"
    # FFmpeg's own timeouts turn a dead or silent stream into a failed read the reader
    # can act on, instead of a read() that blocks for minutes.
    params = [
        cv2.CAP_PROP_OPEN_TIMEOUT_MSEC,
        int(open_timeout * 1000),
        cv2.CAP_PROP_READ_TIMEOUT_MSEC,
        int(read_timeout * 1000),
    ]
    capture = cv2.VideoCapture(url, cv2.CAP_FFMPEG, params)
    if not capture.isOpened():
        capture.release()
        raise SourceError(f"the stream did not open: {diagnose(url, open_timeout)}")
    return VideoCaptureSource(
        capture, "url", finite=False, paced=False, fps=None, read_timeout=read_timeout
    )


def quiet_opencv(verbose: bool) -> None:
    """OpenCV and FFmpeg print their own warnings to stderr; ours say the same in our logs."""
    level = cv2.utils.logging.LOG_LEVEL_WARNING if verbose else cv2.utils.logging.LOG_LEVEL_ERROR
    cv2.utils.logging.setLogLevel(level)
