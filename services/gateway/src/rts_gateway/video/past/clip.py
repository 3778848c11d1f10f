"""Clips: a camera's frames of a time range as one Motion JPEG AVI file, streamed.

Two passes over the same Kafka range, because AVI wants its sizes first (avi.py): the
first notes each of the camera's frames (offset, size, capture time) and drops its bytes;
the second reads the frames again and writes each one as it arrives. Memory holds one
read's worth of frames and the plan (a few bytes per frame), whatever the clip's length;
the range itself is bounded by the `clip_max_seconds` setting.

A frame the second pass cannot find (retention deleted it between the passes, which
only happens at the very edge of the window) keeps its place as a filler chunk, and the
index shows its neighbour instead, so the file stays exactly as long as announced.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator

from rts_common.contracts import VideoFrame

from rts_gateway.video.past.avi import AviLayout, PlannedFrame
from rts_gateway.video.past.reads import KafkaUnavailable, RequestReader
from rts_gateway.video.past.retention import offset_at, window
from rts_gateway.video.times import TimeRange

log = logging.getLogger(__name__)

_RECORDS_PER_READ = 2000
# The second pass gives up (the download fails short of its length) after this long
# without Kafka bringing anything.
_STALLED_SECONDS = 15.0


def plan(
    reader: RequestReader[VideoFrame],
    partition: int,
    span: TimeRange,
    *,
    read_bytes: int,
    timeout: float,
) -> AviLayout | None:
    """The clip's layout, or None when the camera has no frame in `span`. Raises
    OutOfRetention when the range starts before the oldest frame held, KafkaUnavailable
    when the first pass does not finish within `timeout` (a shorter clip than asked
    would look like a complete one), ClipTooLarge past what AVI holds."""
    topic = reader.topic.name
    win = window(reader, topic, partition)
    win.require(span.start_ms)
    start = offset_at(reader, win, span.start_ms, topic)
    end = offset_at(reader, win, min(span.end_ms, win.now_ms), topic)
    deadline = time.monotonic() + timeout
    frames: list[PlannedFrame] = []
    size: tuple[int, int] | None = None
    position = start
    while position < end:
        left = deadline - time.monotonic()
        if left <= 0:
            raise KafkaUnavailable("Kafka did not deliver the clip's frames in time")
        chunk = reader.read(
            partition,
            position,
            end,
            max_bytes=read_bytes,
            max_records=_RECORDS_PER_READ,
            timeout=left,
        )
        for record in chunk.records:
            meta = record.value.meta
            if not span.start_ms * 1_000_000 <= meta.ts_ns < span.end_ms * 1_000_000:
                continue
            size = size or (meta.width, meta.height)
            frames.append(PlannedFrame(record.offset, len(record.value.jpeg), meta.ts_ns))
        position = max(position, chunk.position)
    if not frames or size is None:
        return None
    return AviLayout(frames, size[0], size[1], span_ns=(span.end_ms - span.start_ms) * 1_000_000)


def write(
    reader: RequestReader[VideoFrame],
    partition: int,
    layout: AviLayout,
    *,
    read_bytes: int,
) -> Iterator[bytes]:
    """The AVI file's bytes, read from Kafka again as they are written."""
    frames = layout.frames
    yield layout.header()
    found = [False] * len(frames)
    i, position, end = 0, frames[0].offset, frames[-1].offset + 1
    stalled_since = time.monotonic()
    while i < len(frames):
        if time.monotonic() - stalled_since > _STALLED_SECONDS:
            log.warning("clip abandoned: Kafka brought nothing", extra={"offset": position})
            return
        try:
            chunk = reader.read(
                partition,
                position,
                end,
                max_bytes=read_bytes,
                max_records=_RECORDS_PER_READ,
                timeout=2.0,
            )
        except KafkaUnavailable:
            continue
        if chunk.position > position:
            stalled_since = time.monotonic()
        position = max(position, chunk.position)
        for record in chunk.records:
            while i < len(frames) and frames[i].offset < record.offset:
                yield layout.filler(frames[i].size)
                i += 1
            if i < len(frames) and frames[i].offset == record.offset:
                jpeg = record.value.jpeg
                if len(jpeg) == frames[i].size:
                    yield layout.frame(jpeg)
                    found[i] = True
                else:
                    yield layout.filler(frames[i].size)
                i += 1
        while i < len(frames) and (position >= end or frames[i].offset < position):
            yield layout.filler(frames[i].size)  # read past it: deleted since the plan
            i += 1
    yield layout.index(_shown(found))


def _shown(found: list[bool]) -> list[int]:
    """For each frame, the frame the index shows: itself, else the nearest one found."""
    shown: list[int | None] = []
    last: int | None = None
    for i, ok in enumerate(found):
        last = i if ok else last
        shown.append(i if ok else last)
    following: int | None = None
    for i in range(len(found) - 1, -1, -1):
        following = i if found[i] else following
        if shown[i] is None:
            shown[i] = following
    return [i if s is None else s for i, s in enumerate(shown)]
