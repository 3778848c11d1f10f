"""Camera video: which cameras exist, live fan-out, replays and the dashboard's camera wall.

Delivery semantics of its consumers (all by direct assignment, no group, no commits):
- the camera directory (`video-cameras`): every partition from the beginning; the topic
  is compacted, so that is every camera's newest status;
- frames (`video-frames`): a partition is read only while a local viewer watches a camera
  on it, starting about a second before "now"; a viewer wants the newest frame, not the
  ones it missed, so old positions are never resumed. At-most-once, by design;
- requests that look into the past (a replay, a timeline, a snapshot at a time, a clip):
  one consumer per request that reads only what the request asks for, from the offset
  of the requested capture time (offsets-for-times), and is closed with the request
  (request_reads.py). Their number per process is capped.
"""

from __future__ import annotations

import logging
import time
from typing import Any, TypeVar

from rts_common.contracts import VIDEO_CAMERAS, VIDEO_DETECTIONS, VIDEO_FRAMES
from rts_common.tasks import PeriodicTask

from rts_gateway.bridge import ConsumerLoop, Future, KafkaBridge, Topic
from rts_gateway.metrics import GatewayMetrics
from rts_gateway.settings import GatewaySettings
from rts_gateway.sockets import Payload, SocketServer
from rts_gateway.video.directory import CameraDirectory
from rts_gateway.video.hub import FrameHub
from rts_gateway.video.replay import Replay
from rts_gateway.video.request_reads import PartitionReader, ReadSlots
from rts_gateway.video.wall import ROOM, CameraWall

log = logging.getLogger(__name__)

T = TypeVar("T")

CAMERAS_EVERY_SECONDS = 5.0


class Video:
    def __init__(
        self, settings: GatewaySettings, bridge: KafkaBridge, metrics: GatewayMetrics
    ) -> None:
        self.settings = settings
        self.metrics = metrics
        self.runtime = bridge.runtime
        self._bridge = bridge
        cameras = bridge.topic(VIDEO_CAMERAS)
        self.frames_topic = bridge.topic(VIDEO_FRAMES)
        self.detections_topic = bridge.topic(VIDEO_DETECTIONS)
        self.directory = CameraDirectory(cameras.name, metrics, settings.camera_max_age_seconds)
        self._directory_loop = bridge.direct_consumer(
            cameras, self.directory.on_batch, name="directory", poll_timeout=0.5
        )
        self._frames_loop = bridge.direct_consumer(
            self.frames_topic,
            lambda batch: self.hub.on_batch(batch),  # noqa: PLW0108 - the hub comes next
            name="frames",
            queued_kbytes=16 * 1024,
        )
        self.hub = FrameHub(
            self.frames_topic.name,
            self._frames_loop,
            self.directory,
            metrics,
            start_seconds=settings.frame_start_seconds,
            release_after=settings.release_after_seconds,
            stall_timeout=settings.stall_timeout_seconds,
            peer_closed=self.runtime.peer_closed,
        )
        self.wall = CameraWall(
            self.runtime,
            self.hub,
            self.directory,
            metrics,
            fps=settings.wall_fps,
            max_width=settings.wall_width,
            quality=settings.wall_quality,
        )
        self.request_reads = ReadSlots(settings.max_replays, metrics)
        # Housekeeping runs where the frames are handled (the runtime's dispatcher), so the
        # two never touch the hub's state at once, whatever the async mode.
        self._tasks = [PeriodicTask("frame-hub", 1.0, self.runtime.serialized(self.hub.maintain))]

    # -- wiring

    def attach(self, sockets: SocketServer) -> None:
        """The dashboard's side: the camera list, and the wall over Socket.IO."""
        self.wall.attach(sockets.emit)

        def announce() -> None:
            sockets.emit("cameras", self.directory.listing(), local=True)

        def wall(sid: str, options: Payload) -> Payload:
            on = not isinstance(options, dict) or bool(options.get("on", True))
            if on:
                sockets.enter_room(sid, ROOM)
                self.wall.join(sid)
            else:
                sockets.leave_room(sid, ROOM)
                self.wall.leave(sid)
            return {"wall": on, "cameras": self.wall.watching}

        sockets.on_connect(
            lambda sid: sockets.emit("cameras", self.directory.listing(), to=sid, local=True)
        )
        sockets.on_disconnect(self.wall.leave)
        sockets.on("wall", wall)
        self._tasks.append(
            PeriodicTask("cameras", CAMERAS_EVERY_SECONDS, self.runtime.serialized(announce))
        )

    # -- lifecycle

    def start(self) -> None:
        self._directory_loop.start()
        ends = self._directory_loop.submit(self.directory.assign_all)
        self._frames_loop.start()
        self.runtime.spawn(self._await_directory, ends)
        for task in self._tasks:
            task.start()

    def close_streams(self) -> None:
        """End every stream, so the server can finish its requests."""
        log.info("closing streams", extra={"viewers": self.hub.viewer_count()})
        self.hub.close_all()

    def components(self) -> list[ConsumerLoop[Any] | PeriodicTask]:
        return [self._directory_loop, self._frames_loop, *self._tasks]

    def request_stop(self) -> None:
        for task in self._tasks:
            task.stop(timeout=0)
        self._directory_loop.request_stop()
        self._frames_loop.request_stop()

    def wait_stopped(self, deadline: float) -> None:
        for loop in (self._directory_loop, self._frames_loop):
            loop.wait_stopped(max(0.1, deadline - time.monotonic()))

    def readiness(self) -> tuple[bool, dict[str, Any]]:
        loaded = self.directory.caught_up
        return loaded, {"cameras_loaded": loaded}

    # -- requests into the past

    def open_read(self, kind: str, topic: Topic[T], camera: str) -> PartitionReader[T] | None:
        """A consumer for one request about `camera`, or None when the per-process limit
        of such reads is reached. The caller closes it when the request ends."""
        if not self.request_reads.acquire(kind):
            return None
        try:
            return PartitionReader(
                self._bridge, topic, name=f"{kind}-{camera}", key=camera,
                on_close=lambda: self.request_reads.release(kind),
            )  # fmt: skip
        except BaseException:
            self.request_reads.release(kind)
            raise

    def open_replay(self, camera: str, partition: int, from_ms: int) -> Replay | None:
        """A replay positioned at `from_ms`, or None when the limit is reached; raises
        OutOfRetention (closing what it opened) when Kafka no longer holds that moment."""
        reader = self.open_read("replay", self.frames_topic, camera)
        if reader is None:
            return None
        replay = Replay(
            reader, camera, partition, from_ms,
            buffer_bytes=self.settings.replay_buffer_bytes,
            buffered=self.metrics.replay_buffered_bytes,
        )  # fmt: skip
        try:
            replay.start()
        except BaseException:
            replay.close()
            raise
        return replay

    def _await_directory(self, ends: Future[dict[int, int]]) -> None:
        try:
            self.directory.assigned(ends.result(60.0))
        except Exception as exc:  # noqa: BLE001 - readiness stays false and says why
            log.error("cannot read the camera directory", extra={"error": repr(exc)})
