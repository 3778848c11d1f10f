"""What Kafka still holds of a camera: its retention window, the frame nearest a moment,
and its detections in a time range, each read for one request through a PartitionReader.

The window comes from the camera's `video-frames` partition: its first record's
timestamp (the capture time of the oldest frame still held) to now. Detections are read
by time from `video-detections` (offsets-for-times on their capture timestamps), never
kept in gateway memory.

Which `video-detections` partition holds a camera's detections: capture writes a
camera's frames and detections with one producer, one key (the camera id) and one
partitioner, so when both topics have the same partition count the detections sit in
the partition number the camera announces for its frames (which capture takes from its
delivery reports, so it holds whatever the partitioner is: librdkafka's default
consistent-random CRC32 today, murmur2 if someone switches). Hashing the key here
instead would silently read the wrong partition the day capture's partitioner changes.
When the counts differ (an operator grew one topic), every partition is read and
filtered by key: slower, still right.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from rts_common.contracts import SOURCE_KINDS, Detection, VideoFrame

from rts_gateway.video.request_reads import PartitionReader
from rts_gateway.video.times import TimeRange

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


def window(reader: PartitionReader[Any], topic: str, partition: int) -> Window:
    low, high = reader.watermarks(partition, topic)
    earliest = reader.timestamp_at(partition, low, topic) if high > low else None
    return Window(partition, low, high, earliest, int(time.time() * 1000))


def offset_at(reader: PartitionReader[Any], win: Window, moment_ms: int, topic: str) -> int:
    """The first offset at or after `moment_ms` in the window's partition (high if none)."""
    found = reader.offset_for(win.partition, moment_ms, topic)
    return win.high if found < 0 or found > win.high else max(found, win.low)


def nearest_frame(
    reader: PartitionReader[VideoFrame],
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


@dataclass
class Detections:
    items: list[Detection]
    truncated: bool


@dataclass
class Marks:
    """Detections counted per time bucket and kind: what a timeline draws, whatever the
    number of detections. `buckets` maps (bucket start in ms, kind) to a count."""

    step_ms: int
    buckets: dict[tuple[int, str], int]
    truncated: bool

    def as_json(self) -> list[list[int | str]]:
        return [[start, kind, count] for (start, kind), count in sorted(self.buckets.items())]


def detection_partitions(
    reader: PartitionReader[Detection], frames_topic: str, frames_partition: int
) -> list[int]:
    """The `video-detections` partitions that can hold the camera's detections."""
    count = reader.partitions(reader.topic.name)
    if count == reader.partitions(frames_topic):
        return [frames_partition]
    return list(range(count))


def scan_detections(
    reader: PartitionReader[Detection],
    partitions: Iterable[int],
    span: TimeRange,
    visit: Callable[[Detection], bool],
    *,
    kinds: frozenset[str],
    max_bytes: int,
    timeout: float,
    zone: str | None = None,
) -> bool:
    """Call `visit` with each of the camera's detections of `kinds` captured in `span`, in
    offset order per partition, until it returns False; True when everything in the span
    was read within `timeout`. With `zone`, only detections in that zone (and the source
    going offline and online, which concern every zone)."""
    deadline = time.monotonic() + timeout
    topic = reader.topic.name
    first_ns, end_ns = span.start_ms * 1_000_000, span.end_ms * 1_000_000
    for partition in partitions:
        low, high = reader.watermarks(partition)
        part = Window(partition, low, high, None, span.end_ms)
        position = offset_at(reader, part, span.start_ms, topic)
        end = offset_at(reader, part, span.end_ms, topic)
        while position < end:
            if time.monotonic() >= deadline:
                return False
            chunk = reader.read(
                partition,
                position,
                end,
                max_bytes=max_bytes,
                max_records=10_000,
                timeout=max(0.1, deadline - time.monotonic()),
            )
            for record in chunk.records:
                detection = record.value
                wanted = detection.kind in kinds and first_ns <= detection.ts < end_ns
                if zone is not None and detection.kind not in SOURCE_KINDS:
                    wanted = wanted and zone in detection.zones
                if wanted and not visit(detection):
                    return False
            if chunk.position <= position:
                return False
            position = chunk.position
    return True


def detections_between(
    reader: PartitionReader[Detection],
    partitions: Iterable[int],
    span: TimeRange,
    *,
    kinds: frozenset[str],
    max_items: int,
    max_bytes: int,
    timeout: float,
    zone: str | None = None,
) -> Detections:
    """The camera's detections of `kinds` captured in `span`, oldest first, at most
    `max_items` (then `truncated`), read within `timeout`."""
    found: list[Detection] = []

    def keep(detection: Detection) -> bool:
        found.append(detection)
        return len(found) <= max_items

    complete = scan_detections(
        reader,
        partitions,
        span,
        keep,
        kinds=kinds,
        max_bytes=max_bytes,
        timeout=timeout,
        zone=zone,
    )
    found.sort(key=lambda d: d.ts)
    return Detections(found[:max_items], truncated=not complete or len(found) > max_items)


def detection_marks(
    reader: PartitionReader[Detection],
    partitions: Iterable[int],
    span: TimeRange,
    step_ms: int,
    *,
    kinds: frozenset[str],
    max_bytes: int,
    timeout: float,
    zone: str | None = None,
) -> Marks:
    """The camera's detections in `span`, counted per `step_ms` bucket and kind."""
    buckets: dict[tuple[int, str], int] = {}

    def count(detection: Detection) -> bool:
        ms = detection.ts // 1_000_000
        key = (span.start_ms + (ms - span.start_ms) // step_ms * step_ms, detection.kind)
        buckets[key] = buckets.get(key, 0) + 1
        return True

    complete = scan_detections(
        reader,
        partitions,
        span,
        count,
        kinds=kinds,
        max_bytes=max_bytes,
        timeout=timeout,
        zone=zone,
    )
    return Marks(step_ms, buckets, truncated=not complete)
