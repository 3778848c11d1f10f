"""Replay: a viewer's stream from a past moment, paced as captured, up to where live began.

`?from=-30s` or `?from=2026-11-22T10:00:00Z` finds the first frame captured at or after
that moment (Kafka's offsets-for-times on the capture timestamp), plays the camera's
frames at the pace they were captured (by their `ts` header), and ends at the point that
was live when the replay started; the stream's route then hands over to the live fan-out.

Memory is bounded in bytes, with nothing in flight behind the bound's back: the replay
reads a chunk of at most `buffer_bytes` (one larger frame still passes) only when it has
played everything it held, and its consumer fetches nothing unless asked
(reads.RequestReader), so a replay holds at most one chunk plus librdkafka's small
prefetch, however slow its viewer. Each replay needs its own consumer, so their number
per process is capped (reads.ReadSlots).
"""

from __future__ import annotations

import collections
import logging
import time
from collections.abc import Callable, Iterator

from prometheus_client import Gauge
from rts_common.contracts import VideoFrame

from rts_gateway.metrics import GatewayMetrics
from rts_gateway.video.mjpeg import Frame, part
from rts_gateway.video.past.reads import KafkaUnavailable, RequestReader
from rts_gateway.video.past.retention import offset_at, window

log = logging.getLogger(__name__)

# Frames per read, whatever their size: small frames are cheap, but a read is one round
# trip to the Kafka thread.
_RECORDS_PER_READ = 2000
# A read that brings nothing for this long (the broker is gone) ends the replay; the
# viewer then joins live, or sees the stream end.
_STALLED_SECONDS = 15.0
# Longer pauses between two frames' capture times are gaps in the recording.
_LONGEST_PAUSE = 2.0


class Replay:
    """One viewer's replay of one camera."""

    def __init__(
        self,
        reader: RequestReader[VideoFrame],
        camera: str,
        partition: int,
        from_ms: int,
        *,
        buffer_bytes: int,
        buffered: Gauge,
    ) -> None:
        self.camera = camera
        self._reader = reader
        self._partition = partition
        self._from_ms = from_ms
        self._buffer_bytes = buffer_bytes
        self._buffered = buffered
        self._frames: collections.deque[Frame] = collections.deque()
        self._held = 0
        self._position = 0
        self._live_edge = 0
        self._closed = False

    def start(self) -> None:
        """Find the first frame to play; raises OutOfRetention if the moment is not held."""
        topic = self._reader.topic.name
        win = window(self._reader, topic, self._partition)
        win.require(self._from_ms)
        self._position = offset_at(self._reader, win, self._from_ms, topic)
        self._live_edge = win.high

    @property
    def held_bytes(self) -> int:
        return self._held

    def frames(self, sleep: Callable[[float], None]) -> Iterator[Frame]:
        """The camera's frames from the requested moment to the live edge, paced as captured."""
        first_ts: int | None = None
        started = time.monotonic()
        while not self._closed:
            if not self._frames:
                if self._position >= self._live_edge or not self._fill():
                    return
                continue
            frame = self._frames.popleft()
            self._take(-len(frame.jpeg))
            if first_ts is None:
                first_ts, started = frame.meta.ts_ns, time.monotonic()
            due = started + (frame.meta.ts_ns - first_ts) / 1e9
            delay = due - time.monotonic()
            if delay > _LONGEST_PAUSE:
                # A gap in the recording (the camera was down): show what came next now
                # rather than a frozen picture, and pace from there.
                started -= delay
                delay = 0
            if delay > 0:
                sleep(delay)
            yield frame

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._frames.clear()
        self._take(-self._held)
        self._reader.close()

    def _fill(self) -> bool:
        """Read the next chunk; False when Kafka brought nothing for too long."""
        stalled_since = time.monotonic()
        while time.monotonic() - stalled_since < _STALLED_SECONDS:
            try:
                chunk = self._reader.read(
                    self._partition,
                    self._position,
                    self._live_edge,
                    max_bytes=self._buffer_bytes,
                    max_records=_RECORDS_PER_READ,
                    timeout=2.0,
                )
            except KafkaUnavailable:
                continue
            for record in chunk.records:
                self._frames.append(Frame.from_record(record))
                self._take(len(record.value.jpeg))
            progressed = chunk.position > self._position
            self._position = max(self._position, chunk.position)
            if self._frames or self._position >= self._live_edge:
                return True
            if progressed:
                stalled_since = time.monotonic()
        log.warning("replay stalled: Kafka brought nothing", extra={"camera": self.camera})
        return False

    def _take(self, size: int) -> None:
        self._held += size
        self._buffered.inc(size)


def replay_parts(
    replay: Replay,
    max_fps: float | None,
    metrics: GatewayMetrics,
    sleep: Callable[[float], None],
) -> Iterator[bytes]:
    """The replay's MJPEG parts, paced as captured, at most `max_fps`; the replay is closed
    when they end (or the viewer leaves)."""
    metrics.replays.inc()
    capped = metrics.frames_skipped.labels(camera=replay.camera, reason="fps_cap")
    try:
        min_interval = 1.0 / max_fps if max_fps else 0.0
        next_allowed = 0.0
        for frame in replay.frames(sleep):
            now = time.monotonic()
            if now < next_allowed:
                capped.inc()
                continue
            next_allowed = now + min_interval
            yield part(frame)
    finally:
        replay.close()
        metrics.replays.dec()
