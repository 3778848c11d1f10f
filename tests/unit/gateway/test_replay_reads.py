"""Replay's reading and pacing, with a stand-in for its Kafka reader (the real one is
exercised over HTTP in tests/integration/test_gateway_replay_bounds.py)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from prometheus_client import CollectorRegistry, Gauge
from rts_common.contracts import VIDEO_FRAMES
from rts_gateway.bridge import BadRecords, Topic, decode_batch
from rts_gateway.metrics import GatewayMetrics
from rts_gateway.video.past.reads import Chunk
from rts_gateway.video.past.replay import Replay

from tests.unit.gateway.helpers import frame_message

SECOND = 10**9
JPEG = b"\xff\xd8" + b"\x10" * 996 + b"\xff\xd9"  # 1000 bytes


class Reader:
    """Serves frames from a list, one `read` at a time, and records what each asked for."""

    topic = Topic(VIDEO_FRAMES, "video-frames")

    def __init__(self, capture_ns: list[int], held: Callable[[], float]) -> None:
        self.messages = [
            frame_message("cam", i, ts_ns=ts, value=JPEG) for i, ts in enumerate(capture_ns)
        ]
        self.calls: list[dict[str, Any]] = []
        self.held = held
        self.closed = False

    def read(self, partition: int, start: int, end: int, **limits: Any) -> Chunk[Any]:
        self.calls.append({"start": start, "held": self.held(), **limits})
        taken, size = [], 0
        for message in self.messages[start:end]:
            if size >= limits["max_bytes"]:
                break
            taken.append(message)
            size += len(message.value())
        batch = decode_batch(self.topic, taken, BadRecords(GatewayMetrics(CollectorRegistry())))
        return Chunk(batch.records, start + len(taken), size)

    def close(self) -> None:
        self.closed = True


def replay_of(
    capture_ns: list[int], buffer_bytes: int
) -> tuple[Replay, Reader, Callable[[], float]]:
    registry = CollectorRegistry()
    gauge = Gauge("held_bytes", "JPEG bytes the replay holds", registry=registry)

    def held() -> float:
        return registry.get_sample_value("held_bytes") or 0.0

    reader = Reader(capture_ns, held)
    replay = Replay(reader, "cam", 0, 0, buffer_bytes=buffer_bytes, buffered=gauge)  # type: ignore[arg-type]
    replay._live_edge = len(capture_ns)  # as start() would find it
    return replay, reader, held


def test_a_replay_reads_the_next_chunk_only_once_it_played_what_it_held() -> None:
    replay, reader, held = replay_of([i * SECOND // 10 for i in range(1, 51)], 4000)
    sleeps: list[float] = []
    frames = [f.meta.seq for f in replay.frames(sleeps.append)]
    assert frames == list(range(50))
    assert len(reader.calls) == 13  # 4 frames of 1000 bytes per read
    assert all(call["max_bytes"] == 4000 and call["held"] == 0 for call in reader.calls)
    assert held() == 0
    replay.close()
    assert reader.closed


def test_a_gap_in_the_recording_does_not_freeze_the_replay() -> None:
    capture = [1 * SECOND, 2 * SECOND, 300 * SECOND, 301 * SECOND]
    replay, _reader, _held = replay_of(capture, 10**6)
    sleeps: list[float] = []
    list(replay.frames(sleeps.append))
    assert max(sleeps) < 1.5, sleeps
    assert sum(sleeps) < 3, sleeps
