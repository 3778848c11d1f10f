"""A camera's detections in a time range, for the timeline: each one (the boxes of a
replay) or counted per time bucket (its marks). Read by time from `video-detections`
(offsets-for-times on their capture timestamps) for one request, never kept in gateway
memory.

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

from rts_common.contracts import DETECTION_KINDS as KINDS
from rts_common.contracts import SOURCE_KINDS, ZONE_NAME, Detection

from rts_gateway.video.past.reads import RequestReader
from rts_gateway.video.past.retention import Window, offset_at, window
from rts_gateway.video.times import TimeRange, iso_ms

# The detections' retention (rts_common.contracts): a timeline never asks for more.
TIMELINE_MAX_SECONDS = 24 * 3600
DETECTION_KINDS = frozenset(KINDS)
# A timeline's marks: at most this many buckets (a step that would make more is widened).
MAX_BUCKETS = 10_000
MIN_STEP_MS = 100
# How long after its capture a detection may still reach Kafka (capture's producer gives
# up after --message-timeout, at most 300 s). A camera's detections are in capture order
# in its partition (one producer, one key, frame order), but cameras sharing a partition
# are not in order with each other: one whose detector runs behind another's writes
# detections of the range after the other's later ones. Kafka's offset for a time is the
# first record at or after it, whichever camera's, so the range ends where the camera's
# own first detection at or after the end is, looked for up to this long after the end.
DETECTION_LATENESS_MS = 300_000


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
    reader: RequestReader[Detection], frames_topic: str, frames_partition: int
) -> list[int]:
    """The `video-detections` partitions that can hold the camera's detections."""
    count = reader.partitions(reader.topic.name)
    if count == reader.partitions(frames_topic):
        return [frames_partition]
    return list(range(count))


def scan_detections(
    reader: RequestReader[Detection],
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
        limit = offset_at(reader, part, span.end_ms + DETECTION_LATENESS_MS, topic)
        while position < limit:
            if time.monotonic() >= deadline:
                return False
            chunk = reader.read(
                partition,
                position,
                limit,
                max_bytes=max_bytes,
                max_records=10_000,
                timeout=max(0.1, deadline - time.monotonic()),
            )
            past_the_end = False
            for record in chunk.records:
                detection = record.value
                if detection.ts >= end_ns:
                    if detection.kind in SOURCE_KINDS:
                        # Published by capture's reader, not its detector: not in order
                        # with the detector's results, so it marks no end.
                        continue
                    past_the_end = True  # the camera's own: everything before it is read
                    break
                wanted = detection.kind in kinds and detection.ts >= first_ns
                if zone is not None and detection.kind not in SOURCE_KINDS:
                    wanted = wanted and zone in detection.zones
                if wanted and not visit(detection):
                    return False
            if past_the_end:
                break
            if chunk.position <= position:
                return False
            position = chunk.position
    return True


def detections_between(
    reader: RequestReader[Detection],
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
    reader: RequestReader[Detection],
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


def camera_timeline(
    reader: RequestReader[Detection],
    camera: str,
    frames_topic: str,
    partition: int,
    start_ms: int | None,
    end_ms: int,
    step_ms: int | None,
    *,
    kinds: frozenset[str],
    read_bytes: int,
    timeout: float,
    max_items: int,
    zone: str | None = None,
) -> dict[str, Any]:
    """What `/api/timeline` answers: the camera's retention window (from its frames'
    `partition`) and its detections in [start, end) (start None: the whole window), each
    one, or with `step_ms` counted per bucket and kind; with `zone`, only the detections
    in that zone (and the camera's offline and online marks)."""
    win = window(reader, frames_topic, partition)
    first = start_ms if start_ms is not None else (win.earliest_ms or win.now_ms)
    span = TimeRange(max(first, end_ms - TIMELINE_MAX_SECONDS * 1000), end_ms)
    body: dict[str, Any] = {
        "camera": camera,
        "earliest_ms": win.earliest_ms,
        "earliest": iso_ms(win.earliest_ms),
        "now_ms": win.now_ms,
        "from_ms": span.start_ms,
        "to_ms": span.end_ms,
    }
    partitions = (
        detection_partitions(reader, frames_topic, partition) if span.end_ms > span.start_ms else []
    )
    if step_ms is not None:
        step = max(step_ms, -(-(span.end_ms - span.start_ms) // MAX_BUCKETS))
        marks = detection_marks(
            reader,
            partitions,
            span,
            step,
            kinds=kinds,
            max_bytes=read_bytes,
            timeout=timeout,
            zone=zone,
        )
        return body | {"step_ms": step, "marks": marks.as_json(), "truncated": marks.truncated}
    found = detections_between(
        reader,
        partitions,
        span,
        kinds=kinds,
        max_bytes=read_bytes,
        timeout=timeout,
        max_items=max_items,
        zone=zone,
    )
    return body | {
        "detections": [d.model_dump() for d in found.items],
        "truncated": found.truncated,
    }


def parse_kinds(value: str | None) -> frozenset[str]:
    if not value:
        return DETECTION_KINDS
    kinds = frozenset(k.strip() for k in value.split(",") if k.strip())
    if not kinds or not kinds <= DETECTION_KINDS:
        raise ValueError(f"kinds: a comma-separated list of {', '.join(sorted(DETECTION_KINDS))}")
    return kinds


def parse_zone(value: str | None) -> str | None:
    if not value:
        return None
    if not ZONE_NAME.fullmatch(value):
        raise ValueError("zone: a zone's name (letters, digits, '_' and '-')")
    return value


def parse_step(value: str | None) -> int | None:
    if not value:
        return None
    if not value.isdigit() or len(value) > 9 or int(value) < MIN_STEP_MS:
        raise ValueError(f"step: a bucket length in milliseconds, at least {MIN_STEP_MS}")
    return int(value)
