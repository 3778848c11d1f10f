"""A camera's frame as both paths hand it to viewers, and its MJPEG part.

MJPEG over HTTP is `multipart/x-mixed-replace`, one JPEG per part. Each part carries its
own Content-Length (browsers and players can then read a part without scanning for the
boundary) and the frame's sequence number and capture time, so a client can measure
latency and detect skipped frames.
"""

from __future__ import annotations

import time
import weakref
from dataclasses import dataclass

from rts_common.contracts import FrameMeta, VideoFrame

from rts_gateway.bridge import Record

BOUNDARY = "frame"
CONTENT_TYPE = f"multipart/x-mixed-replace; boundary={BOUNDARY}"


# Compared and hashed by identity (a frame's bytes are not worth hashing), and weakly
# referable, so the MJPEG part of a frame is built once for all its viewers.
@dataclass(frozen=True, slots=True, eq=False, weakref_slot=True)
class Frame:
    meta: FrameMeta
    jpeg: bytes
    partition: int
    offset: int

    @classmethod
    def from_record(cls, record: Record[VideoFrame]) -> Frame:
        return cls(record.value.meta, record.value.jpeg, record.partition, record.offset)

    @property
    def age_seconds(self) -> float:
        return time.time() - self.meta.ts_ns / 1e9


# Each frame's part, built once for all its viewers (a 60 KB copy per viewer per frame
# was a fifth of the fan-out's cost); forgotten with the frame.
_parts: weakref.WeakKeyDictionary[Frame, bytes] = weakref.WeakKeyDictionary()


def part(frame: Frame) -> bytes:
    built = _parts.get(frame)
    if built is None:
        built = _parts[frame] = _build(frame)
    return built


def _build(frame: Frame) -> bytes:
    meta = frame.meta
    head = (
        f"--{BOUNDARY}\r\n"
        "Content-Type: image/jpeg\r\n"
        f"Content-Length: {len(frame.jpeg)}\r\n"
        f"X-Camera: {meta.camera}\r\n"
        f"X-Frame-Seq: {meta.seq}\r\n"
        f"X-Frame-Timestamp: {meta.ts_ns}\r\n"
        "\r\n"
    ).encode("ascii")
    return head + frame.jpeg + b"\r\n"
