"""Motion JPEG in an AVI (RIFF) container, laid out before it is written.

AVI puts its sizes first: the RIFF and `movi` list lengths, the frame count and the
frame rate sit in the headers, ahead of the frames; its index (`idx1`) comes last. So a
clip is laid out from the size and capture time of each of its frames (a few bytes per
frame, see clip.py), then streamed chunk by chunk exactly as laid out, the index last.
The file's length is known before its first byte.

AVI has one frame rate; camera frames come at their own pace. The rate is the clip's
average (frames over the span of their capture times), so the clip lasts as long as
the moment it shows.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass

# Readers that predate OpenDML stop at 1 GiB per RIFF; clips stay below it.
MAX_FILE_BYTES = 1024 * 1024 * 1024

_AVIF_HASINDEX = 0x10
_AVIIF_KEYFRAME = 0x10
_HEADERS = 12 + 12 + (8 + 56) + 12 + (8 + 56) + (8 + 40) + 12  # up to the first chunk
_INDEX_ENTRY = 16


class ClipTooLarge(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class PlannedFrame:
    """One frame of a clip: where it is in Kafka, its JPEG size and capture time."""

    offset: int
    size: int
    ts_ns: int


def _padded(size: int) -> int:
    return size + (size & 1)


class AviLayout:
    def __init__(
        self, frames: Sequence[PlannedFrame], width: int, height: int, span_ns: int
    ) -> None:
        if not frames:
            raise ValueError("a clip needs at least one frame")
        self.frames = frames
        self.width, self.height = width, height
        count = len(frames)
        span = frames[-1].ts_ns - frames[0].ts_ns
        interval_ns = span / (count - 1) if count > 1 else span_ns
        self.microseconds_per_frame = max(1, round(interval_ns / 1000))
        self.movi_bytes = 4 + sum(8 + _padded(f.size) for f in frames)
        self.total_bytes = _HEADERS - 12 + 8 + self.movi_bytes + 8 + _INDEX_ENTRY * count
        if self.total_bytes > MAX_FILE_BYTES:
            raise ClipTooLarge(
                f"the clip would take {self.total_bytes / 2**20:.0f} MiB, more than an AVI "
                f"file holds ({MAX_FILE_BYTES // 2**20} MiB): choose a shorter range"
            )

    @property
    def duration_seconds(self) -> float:
        return len(self.frames) * self.microseconds_per_frame / 1e6

    def header(self) -> bytes:
        """Everything before the first frame's chunk."""
        count, largest = len(self.frames), max(f.size for f in self.frames)
        us = self.microseconds_per_frame
        bytes_per_second = round(largest * 1e6 / us)
        avih = struct.pack(
            "<14I",
            us,
            bytes_per_second,
            0,
            _AVIF_HASINDEX,
            count,
            0,
            1,
            largest,
            self.width,
            self.height,
            0,
            0,
            0,
            0,
        )
        strh = struct.pack(
            "<4s4sIHHIIIIIIII4h",
            b"vids",
            b"MJPG",
            0,
            0,
            0,
            0,
            us,
            1_000_000,
            0,
            count,
            largest,
            0xFFFFFFFF,
            0,
            0,
            0,
            self.width,
            self.height,
        )
        strf = struct.pack(
            "<IiiHH4sIiiII",
            40,
            self.width,
            self.height,
            1,
            24,
            b"MJPG",
            self.width * self.height * 3,
            0,
            0,
            0,
            0,
        )
        strl = _list(b"strl", _chunk(b"strh", strh) + _chunk(b"strf", strf))
        hdrl = _list(b"hdrl", _chunk(b"avih", avih) + strl)
        riff = b"RIFF" + struct.pack("<I", self.total_bytes - 8) + b"AVI "
        movi = b"LIST" + struct.pack("<I", self.movi_bytes) + b"movi"
        head = riff + hdrl + movi
        assert len(head) == _HEADERS
        return head

    def frame(self, jpeg: bytes) -> bytes:
        return _chunk(b"00dc", jpeg)

    def filler(self, size: int) -> bytes:
        """A chunk players skip, as long as a planned frame that could not be read."""
        return _chunk(b"JUNK", b"\0" * size)

    def index(self, shown: Sequence[int]) -> bytes:
        """`idx1`: entry i shows the chunk of frame `shown[i]` (itself, or a neighbour
        when frame i could not be read and its place holds a filler)."""
        positions, at = [], 4  # offsets from the `movi` fourcc, as AVI readers expect
        for f in self.frames:
            positions.append(at)
            at += 8 + _padded(f.size)
        entries = b"".join(
            struct.pack("<4sIII", b"00dc", _AVIIF_KEYFRAME, positions[j], self.frames[j].size)
            for j in shown
        )
        return b"idx1" + struct.pack("<I", len(entries)) + entries


def _chunk(fourcc: bytes, data: bytes) -> bytes:
    return fourcc + struct.pack("<I", len(data)) + data + (b"\0" if len(data) & 1 else b"")


def _list(kind: bytes, body: bytes) -> bytes:
    return b"LIST" + struct.pack("<I", 4 + len(body)) + kind + body
