"""Which partitions of `video-frames` this pod is assigned for its live viewers, and making
sure each one delivers.

A partition is read while at least one local viewer watches a camera on it, from about a
second before "now", and let go shortly after the last one leaves. Assigning it needs
the broker (offsets-for-times): when that fails (a broker that does not answer, a
timeout) the read is retried with backoff instead of staying assigned on paper only.
And a read that stopped delivering while the camera's own status says it keeps
publishing (a consumer left behind by a broker outage) is re-positioned at "now".

Runs in the app context; the Kafka calls are commands run by the frames consumer's
native thread.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from confluent_kafka import OFFSET_END, Consumer, TopicPartition
from rts_common.contracts import VideoFrame
from rts_common.logs import Throttle

from rts_gateway.bridge import ConsumerLoop, Future
from rts_gateway.metrics import GatewayMetrics
from rts_gateway.video.directory import CameraDirectory

log = logging.getLogger(__name__)

# A camera whose status shows frames this much newer than the newest one read here is
# not being delivered: re-position the read (at most once per this interval).
STALE_SECONDS = 3.0
# An assignment that neither succeeded nor failed by now is given up and retried.
ASSIGN_TIMEOUT_SECONDS = 30.0
RETRY_MIN_SECONDS, RETRY_MAX_SECONDS = 1.0, 10.0

State = Literal["assigning", "reading", "waiting"]


@dataclass
class Assignment:
    partition: int
    cameras: dict[str, int] = field(default_factory=dict)  # camera -> local viewers
    release_at: float | None = None
    state: State = "assigning"
    since: float = field(default_factory=time.monotonic)  # when the state began
    failures: int = 0
    retry_at: float = 0.0
    positioned_at: float = 0.0  # when it was last (re-)positioned
    stalls: int = 0  # re-positions since the read last delivered


class FrameAssignments:
    def __init__(
        self,
        topic: str,
        consumer: ConsumerLoop[VideoFrame],
        directory: CameraDirectory,
        metrics: GatewayMetrics,
        *,
        start_seconds: float,
        release_after: float,
    ) -> None:
        self.topic = topic
        self._consumer = consumer
        self._directory = directory
        self._metrics = metrics
        self._start_seconds = start_seconds
        self._release_after = release_after
        self._reads: dict[int, Assignment] = {}
        self._errors = Throttle(60.0)

    def __contains__(self, partition: int) -> bool:
        return partition in self._reads

    @property
    def partitions(self) -> list[int]:
        return sorted(self._reads)

    def state(self, partition: int) -> State | None:
        read = self._reads.get(partition)
        return read.state if read else None

    def watch(self, partition: int, camera: str) -> bool:
        """Count a viewer of `camera`; True when the partition's read starts now."""
        read = self._reads.get(partition)
        started = read is None
        if read is None:
            read = self._reads[partition] = Assignment(partition)
            self._position(read, "new")
            self._metrics.assignments.labels(topic=self.topic).inc()
            self._metrics.partitions_assigned.labels(topic=self.topic).set(len(self._reads))
        read.cameras[camera] = read.cameras.get(camera, 0) + 1
        read.release_at = None
        self._metrics.camera_reads.set(self._cameras_read())
        return started

    def unwatch(self, camera: str) -> None:
        for read in self._reads.values():
            if camera in read.cameras:
                read.cameras[camera] -= 1
                if read.cameras[camera] <= 0:
                    del read.cameras[camera]
                if not read.cameras:
                    read.release_at = time.monotonic() + self._release_after
        self._metrics.camera_reads.set(self._cameras_read())

    def delivered(self, partition: int) -> None:
        """Frames arrived on `partition`: it works."""
        read = self._reads.get(partition)
        if read is not None:
            read.stalls = 0

    def maintain(self, newest_ts: Callable[[str], int | None]) -> list[int]:
        """Release idle reads, retry failed ones, re-position stalled ones; returns the
        partitions released. `newest_ts(camera)`: capture time (ns) of the newest frame
        of the camera read here."""
        now = time.monotonic()
        released = [p for p, r in self._reads.items() if r.release_at and r.release_at <= now]
        for partition in released:
            del self._reads[partition]
            self._consumer.submit(self._unassigner(partition))
        if released:
            self._metrics.partitions_assigned.labels(topic=self.topic).set(len(self._reads))
            self._metrics.camera_reads.set(self._cameras_read())
        for read in self._reads.values():
            if read.state == "waiting" and now >= read.retry_at:
                self._position(read, "retry")
            elif read.state == "assigning" and now - read.since > ASSIGN_TIMEOUT_SECONDS:
                self._failed(read, TimeoutError("no answer from the frames consumer"))
            elif read.state == "reading" and self._stalled(read, now, newest_ts):
                read.stalls += 1
                self._position(read, "stalled")
        return released

    # -- positioning

    def _position(self, read: Assignment, reason: str) -> None:
        now = time.monotonic()
        read.state, read.since, read.positioned_at = "assigning", now, now
        start_ms = int((time.time() - self._start_seconds) * 1000)
        future: Future[None] = self._consumer.submit(self._assigner(read.partition, start_ms))
        future.add_done_callback(lambda error: self._positioned(read, error))
        if reason != "new":
            self._metrics.read_repositions.labels(reason=reason).inc()
            log.info(
                "re-positioning a frames read",
                extra={"partition": read.partition, "reason": reason},
            )

    def _positioned(self, read: Assignment, error: BaseException | None) -> None:
        if self._reads.get(read.partition) is not read:
            return  # released meanwhile
        if error is not None:
            self._failed(read, error)
            return
        read.state, read.since, read.failures = "reading", time.monotonic(), 0

    def _failed(self, read: Assignment, error: BaseException) -> None:
        read.failures += 1
        delay = min(RETRY_MAX_SECONDS, RETRY_MIN_SECONDS * 2 ** (read.failures - 1))
        read.state, read.since, read.retry_at = (
            "waiting",
            time.monotonic(),
            time.monotonic() + delay,
        )
        self._metrics.read_failures.inc()
        if self._errors.allow(read.partition):
            log.warning(
                "cannot read a frames partition; retrying",
                extra={"partition": read.partition, "retry_in": delay, "error": str(error)},
            )

    def _stalled(
        self, read: Assignment, now: float, newest_ts: Callable[[str], int | None]
    ) -> bool:
        """The camera says Kafka has frames newer than any read here, for a while. Each
        re-position that did not help waits twice as long before the next: while a
        partition's leader moves, librdkafka recovers by itself, and asking the broker for
        offsets meanwhile only holds the frames consumer up."""
        wait = min(RETRY_MAX_SECONDS * 6, STALE_SECONDS * 2**read.stalls)
        if now - read.positioned_at < wait:
            return False
        for camera in read.cameras:
            status = self._directory.get(camera)
            if status is None or not status.source_up or status.last_frame_ts is None:
                continue
            if status.last_frame_ts - (newest_ts(camera) or 0) > STALE_SECONDS * 1e9:
                return True
        return False

    # -- native-thread commands

    def _assigner(self, partition: int, start_ms: int) -> Callable[[Consumer], None]:
        def assign(consumer: Consumer) -> None:
            """Read `partition` from `start_ms` (capture time) on, or move an existing
            read there."""
            found = consumer.offsets_for_times(
                [TopicPartition(self.topic, partition, start_ms)], 10
            )[0].offset
            target = TopicPartition(self.topic, partition, found if found >= 0 else OFFSET_END)
            if any(tp.partition == partition for tp in consumer.assignment()):
                consumer.seek(target)
            else:
                consumer.incremental_assign([target])

        return assign

    def _unassigner(self, partition: int) -> Callable[[Consumer], None]:
        def unassign(consumer: Consumer) -> None:
            if any(tp.partition == partition for tp in consumer.assignment()):
                consumer.incremental_unassign([TopicPartition(self.topic, partition)])

        return unassign

    def _cameras_read(self) -> int:
        return sum(len(r.cameras) for r in self._reads.values())
