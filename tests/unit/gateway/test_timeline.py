"""The timeline's scan of one camera's detections, with a stand-in for its Kafka reader
(the real one is exercised over HTTP in tests/integration/test_gateway_history.py): where
a range ends when records are not in capture order, and the zone filter."""

from __future__ import annotations

from typing import Any

from rts_common.contracts import VIDEO_DETECTIONS, Detection
from rts_gateway.bridge import Topic
from rts_gateway.bridge.records import Record
from rts_gateway.video.past.reads import Chunk
from rts_gateway.video.past.timeline import DETECTION_KINDS, detections_between
from rts_gateway.video.times import TimeRange

SECOND = 10**9


class Reader:
    """One partition of one camera's detections, in the order given (the offset order)."""

    topic = Topic(VIDEO_DETECTIONS, "video-detections")

    def __init__(self, detections: list[Detection]) -> None:
        self.detections = detections

    def watermarks(self, partition: int, topic: str | None = None) -> tuple[int, int]:
        return 0, len(self.detections)

    def offset_for(self, partition: int, epoch_ms: int, topic: str | None = None) -> int:
        """Kafka's: the first record (in offset order) stamped at or after the moment."""
        for offset, detection in enumerate(self.detections):
            if detection.ts // 1_000_000 >= epoch_ms:
                return offset
        return -1

    def read(self, partition: int, start: int, end: int, **_limits: Any) -> Chunk[Detection]:
        records = [
            Record(partition, offset, d.ts // 1_000_000, b"cam", None, d)
            for offset, d in enumerate(self.detections[start:end], start=start)
        ]
        return Chunk(records, end, 0)


def _detection(seconds: float, kind: str = "motion", zones: tuple[str, ...] = ()) -> Detection:
    boxes = [] if kind in ("offline", "online") else [(1, 2, 3, 4)]
    return Detection(
        camera="cam",
        seq=int(seconds * 10),
        ts=int((1000 + seconds) * SECOND),
        kind=kind,  # type: ignore[arg-type]
        boxes=boxes,
        score=1.0,
        zones=list(zones),
    )


def _between(reader: Reader, start: float, end: float, zone: str | None = None) -> list[float]:
    span = TimeRange(int((1000 + start) * 1000), int((1000 + end) * 1000))
    found = detections_between(
        reader,  # type: ignore[arg-type]
        [0],
        span,
        kinds=DETECTION_KINDS,
        max_items=100,
        max_bytes=1 << 20,
        timeout=5,
        zone=zone,
    )
    assert not found.truncated
    return [d.ts / SECOND - 1000 for d in found.items]


def test_the_sources_coming_back_after_the_end_does_not_end_the_range_early() -> None:
    """capture's reader announces the source back while its detector is still publishing
    an earlier frame's result: the log holds a record past the range's end before one of
    the range's own. Only the detector's results are in capture order."""
    reader = Reader(
        [
            _detection(1),
            _detection(8),
            _detection(10.5, "online"),
            _detection(9),
            _detection(11),
            _detection(2),  # after the detector's first result past the end: not looked for
        ]
    )
    assert _between(reader, 0, 10) == [1, 8, 9]


def test_a_zone_keeps_its_detections_and_every_offline_and_online() -> None:
    reader = Reader(
        [
            _detection(1, zones=("door",)),
            _detection(2, zones=("yard",)),
            _detection(3, "offline"),
            _detection(4, "online"),
            _detection(5, "face", zones=("yard", "door")),
            _detection(6),
        ]
    )
    assert _between(reader, 0, 10, zone="door") == [1, 3, 4, 5]
    assert _between(reader, 0, 10) == [1, 2, 3, 4, 5, 6]
