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
from typing import Any

from confluent_kafka import Consumer, Message, TopicPartition
from rts_common.logs import Throttle

from rts_gateway.frames import Frame, parse_frame
from rts_gateway.kafka import ConsumerLoop
from rts_gateway.metrics import GatewayMetrics
from rts_gateway.runtime import Runtime

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
        runtime: Runtime,
        consumer_config: dict[str, Any],
        topic: str,
        camera: str,
        partition: int,
        from_ms: int,
        metrics: GatewayMetrics,
        max_frame_bytes: int,
        on_close: Callable[[], None] = lambda: None,
    ) -> None:
        self.camera = camera
        self._on_close = on_close
        self._closed = False
        self._runtime = runtime
        self._topic = topic
        self._partition = partition
        self._from_ms = from_ms
        self._metrics = metrics
        self._max_frame_bytes = max_frame_bytes
        self._frames: collections.deque[Frame] = collections.deque()
        self._arrived = threading.Event()
        self._live_edge = 0
        self._caught_up = False
        self._bad_log = Throttle(60.0)
        self._loop = ConsumerLoop(
            runtime,
            consumer_config,
            self._on_messages,
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
        while True:
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

    def _on_messages(self, messages: list[Message]) -> None:
        for msg in messages:
            offset = msg.offset() or 0
            if offset >= self._live_edge - 1:
                self._caught_up = True
            if offset >= self._live_edge:
                break
            frame = parse_frame(msg, self._max_frame_bytes, self._metrics, self._bad_log)
            if frame is not None and frame.meta.camera == self.camera:
                self._frames.append(frame)
        self._arrived.set()
