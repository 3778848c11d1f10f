"""Replay: a viewer's stream from a past moment, paced as captured, then live.

`?from=-30s` or `?from=2026-11-22T10:00:00Z` finds the first frame captured at or after
that moment (Kafka's offsets-for-times on the capture timestamp), plays the frames of
the camera at the pace they were captured (by their `ts` header), and once it reaches
the point that was live when the replay started, hands over to the live fan-out.
Each replay needs its own consumer, so their number per pod is capped.
"""

from __future__ import annotations

import collections
import re
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime

from confluent_kafka import Consumer, TopicPartition
from rts_common.contracts import VideoFrame

from rts_gateway.bridge import Batch, KafkaBridge, Topic
from rts_gateway.video.hub import Frame

_RELATIVE = re.compile(r"^-(\d+(?:\.\d+)?)(ms|s|m|h)$")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
# Frames buffered ahead of the pacing; the consumer pauses beyond this.
_AHEAD = 64


class BadReplayTime(ValueError):
    pass


class OutOfRetention(LookupError):
    def __init__(self, requested_ms: int, earliest_ms: int | None) -> None:
        super().__init__("the requested time is older than what Kafka still holds")
        self.requested_ms = requested_ms
        self.earliest_ms = earliest_ms


def parse_from(value: str, now: float | None = None) -> int:
    """`-30s`, `-1500ms`, `-2m`, `-1h` or an ISO-8601 time, as epoch milliseconds."""
    now = time.time() if now is None else now
    match = _RELATIVE.match(value.strip())
    if match:
        return int((now - float(match.group(1)) * _UNITS[match.group(2)]) * 1000)
    try:
        moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise BadReplayTime(
            f"from={value!r}: use a negative offset like -30s, -2m, -1500ms, -1h "
            "or an ISO-8601 time like 2026-11-22T10:00:00Z"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


def iso_ms(epoch_ms: int | None) -> str | None:
    if epoch_ms is None:
        return None
    return datetime.fromtimestamp(epoch_ms / 1000, UTC).isoformat(timespec="milliseconds")


class Replay:
    """One viewer's replay of one camera."""

    def __init__(
        self,
        bridge: KafkaBridge,
        topic: Topic[VideoFrame],
        camera: str,
        partition: int,
        from_ms: int,
        on_close: Callable[[], None] = lambda: None,
    ) -> None:
        self.camera = camera
        self._on_close = on_close
        self._closed = False
        self._topic = topic.name
        self._partition = partition
        self._from_ms = from_ms
        self._frames: collections.deque[Frame] = collections.deque()
        self._arrived = threading.Event()
        self._live_edge = 0
        self._caught_up = False
        # Each replay reads from its own position: a consumer of its own, no group.
        self._loop = bridge.direct_consumer(
            topic,
            self._on_batch,
            name=f"replay-{camera}",
            paused=lambda: len(self._frames) >= _AHEAD,
        )

    def start(self, timeout: float = 15.0) -> None:
        """Position the consumer; raises OutOfRetention if the moment is no longer held."""
        self._loop.start()
        try:
            self._live_edge = self._loop.submit(self._seek).result(timeout)
        except BaseException:
            self.close()
            raise
        if self._live_edge < 0:  # nothing to replay: the moment is now or later
            self._caught_up = True

    def frames(self, sleep: Callable[[float], None]) -> Iterator[Frame]:
        """The camera's frames from the requested moment to the live edge, paced as captured."""
        first_ts: int | None = None
        started = time.monotonic()
        while not self._closed:
            if not self._frames:
                if self._caught_up:
                    return
                self._arrived.wait(1.0)
                self._arrived.clear()
                continue
            frame = self._frames.popleft()
            if first_ts is None:
                first_ts, started = frame.meta.ts_ns, time.monotonic()
            due = started + (frame.meta.ts_ns - first_ts) / 1e9
            delay = due - time.monotonic()
            if delay > 0:
                sleep(delay)
            yield frame

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._arrived.set()  # a viewer waiting for frames learns at once
        self._loop.stop(timeout=5.0)
        self._on_close()

    # -- native thread

    def _seek(self, consumer: Consumer) -> int:
        tp = TopicPartition(self._topic, self._partition)
        low, high = consumer.get_watermark_offsets(tp, timeout=10)
        if high <= low:
            raise OutOfRetention(self._from_ms, None)
        earliest_ms = self._timestamp_at(consumer, low)
        if earliest_ms is not None and self._from_ms < earliest_ms - 1000:
            raise OutOfRetention(self._from_ms, earliest_ms)
        found = consumer.offsets_for_times(
            [TopicPartition(self._topic, self._partition, self._from_ms)], timeout=10
        )[0].offset
        if found < 0 or found >= high:
            return -1
        consumer.assign([TopicPartition(self._topic, self._partition, found)])
        return high

    def _timestamp_at(self, consumer: Consumer, offset: int) -> int | None:
        consumer.assign([TopicPartition(self._topic, self._partition, offset)])
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is not None and msg.error() is None:
                return int(msg.timestamp()[1])
        return None

    # -- app context

    def _on_batch(self, batch: Batch[VideoFrame]) -> None:
        for record in batch.records:
            if record.offset >= self._live_edge:
                break
            if record.value.meta.camera == self.camera:
                self._frames.append(Frame.from_record(record))
        if batch.ends.get(self._partition, 0) >= self._live_edge:
            self._caught_up = True
        self._arrived.set()
