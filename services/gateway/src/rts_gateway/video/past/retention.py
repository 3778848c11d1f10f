"""What Kafka still holds of a camera (its retention window), where a moment falls in it,
and the frame nearest a moment, each read for one request through a RequestReader.

The window comes from the camera's `video-frames` partition: its first record's
timestamp (the capture time of the oldest frame still held) to now.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from rts_common.contracts import VideoFrame

from rts_gateway.video.past.reads import RequestReader

# A moment up to this much before the oldest frame still counts as held: the oldest
# frame is the answer (the window's edge moves while the page decides).
EDGE_MS = 1000
# How far around the requested moment a snapshot looks for the nearest frame.
NEAREST_WINDOW_MS = 2000


class OutOfRetention(LookupError):
    """A moment outside what Kafka holds for the camera: a 416."""

    def __init__(self, requested_ms: int, earliest_ms: int | None, latest_ms: int) -> None:
        super().__init__("the requested time is outside what Kafka still holds")
        self.requested_ms = requested_ms
        self.earliest_ms = earliest_ms
        self.latest_ms = latest_ms


@dataclass(frozen=True)
class Window:
    """A partition's offsets [low, high) and the oldest record's timestamp (ms)."""

    partition: int
    low: int
    high: int
    earliest_ms: int | None
    now_ms: int

    @property
    def empty(self) -> bool:
        return self.high <= self.low or self.earliest_ms is None

    def require(self, moment_ms: int) -> None:
        """OutOfRetention unless `moment_ms` is within [earliest, now]."""
        if (
            self.empty
            or self.earliest_ms is None
            or moment_ms < self.earliest_ms - EDGE_MS
            or moment_ms > self.now_ms + EDGE_MS
        ):
            raise OutOfRetention(moment_ms, None if self.empty else self.earliest_ms, self.now_ms)


def window(reader: RequestReader[Any], topic: str, partition: int) -> Window:
    low, high = reader.watermarks(partition, topic)
    earliest = reader.timestamp_at(partition, low, topic) if high > low else None
    return Window(partition, low, high, earliest, int(time.time() * 1000))


def offset_at(reader: RequestReader[Any], win: Window, moment_ms: int, topic: str) -> int:
    """The first offset at or after `moment_ms` in the window's partition (high if none)."""
    found = reader.offset_for(win.partition, moment_ms, topic)
    return win.high if found < 0 or found > win.high else max(found, win.low)


def nearest_frame(
    reader: RequestReader[VideoFrame],
    win: Window,
    moment_ms: int,
    *,
    max_bytes: int,
    timeout: float,
) -> VideoFrame | None:
    """The camera's frame whose capture time is nearest `moment_ms`, within a couple of
    seconds; holds one read's worth of frames at a time."""
    win.require(moment_ms)
    topic = reader.topic.name
    start = offset_at(reader, win, moment_ms - NEAREST_WINDOW_MS, topic)
    end = offset_at(reader, win, moment_ms + NEAREST_WINDOW_MS, topic)
    deadline = time.monotonic() + timeout
    best: VideoFrame | None = None
    position = start
    while position < end and time.monotonic() < deadline:
        chunk = reader.read(
            win.partition,
            position,
            end,
            max_bytes=max_bytes,
            max_records=10_000,
            timeout=max(0.1, deadline - time.monotonic()),
        )
        for record in chunk.records:
            frame = record.value
            if best is None or _distance(frame, moment_ms) < _distance(best, moment_ms):
                best = frame
        if chunk.position <= position:
            break
        position = chunk.position
    return best


def _distance(frame: VideoFrame, moment_ms: int) -> float:
    return abs(frame.meta.ts_ns / 1e6 - moment_ms)
