"""Camera video, composed: which cameras exist (directory.py), the live path (live/: fan-out,
MJPEG, the camera wall) and the past Kafka still holds (past/: replays, snapshots at a
time, clips, the timeline), with the consumers they share and their routes.

Delivery semantics of its consumers (all by direct assignment, no group, no commits):
- the camera directory (`video-cameras`): every partition from the beginning; the topic
  is compacted, so that is every camera's newest status;
- frames (`video-frames`): a partition is read only while a local viewer watches a camera
  on it, starting about a second before "now"; a viewer wants the newest frame, not the
  ones it missed, so old positions are never resumed. At-most-once, by design;
- requests that look into the past (a replay, a timeline, a snapshot at a time, a clip):
  one consumer per request that reads only what the request asks for, from the offset
  of the requested capture time (offsets-for-times), and is closed with the request
  (past/reads.py). Their number per process is capped.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from flask import Blueprint
from rts_common.contracts import VIDEO_CAMERAS, VIDEO_DETECTIONS, VIDEO_FRAMES
from rts_common.tasks import PeriodicTask

from rts_gateway.bridge import ConsumerLoop, KafkaBridge
from rts_gateway.grants import Leases
from rts_gateway.metrics import GatewayMetrics
from rts_gateway.settings import GatewaySettings
from rts_gateway.sockets import SocketServer
from rts_gateway.video.directory import CameraDirectory
from rts_gateway.video.http import CameraLookup
from rts_gateway.video.live.cameras import CameraAnnouncements
from rts_gateway.video.live.hub import FrameHub
from rts_gateway.video.live.routes import LiveRoutes
from rts_gateway.video.live.streams import Streams
from rts_gateway.video.live.wall import CameraWall
from rts_gateway.video.past.reads import RequestReads
from rts_gateway.video.past.routes import PastRoutes

log = logging.getLogger(__name__)


class Video:
    def __init__(
        self,
        settings: GatewaySettings,
        bridge: KafkaBridge,
        metrics: GatewayMetrics,
        leases: Leases,
    ) -> None:
        self._settings = settings
        self._metrics = metrics
        self._runtime = bridge.runtime
        cameras = bridge.topic(VIDEO_CAMERAS)
        self._frames = bridge.topic(VIDEO_FRAMES)
        self._detections = bridge.topic(VIDEO_DETECTIONS)
        self.directory = CameraDirectory(cameras.name, metrics, settings.camera_max_age_seconds)
        self._directory_loop = bridge.direct_consumer(
            cameras,
            self.directory.on_batch,
            name="directory",
            poll_timeout=0.5,
            expect_assignment=True,
        )
        self._frames_loop = bridge.direct_consumer(
            self._frames,
            lambda batch: self.hub.on_batch(batch),  # noqa: PLW0108 - the hub comes next
            name="frames",
            queued_kbytes=16 * 1024,
        )
        # The live path
        self.hub = FrameHub(
            self._frames.name,
            self._frames_loop,
            self.directory,
            metrics,
            start_seconds=settings.frame_start_seconds,
            release_after=settings.release_after_seconds,
            stall_timeout=settings.stall_timeout_seconds,
            peer_closed=self._runtime.peer_closed,
            flag=self._runtime.flag,
        )
        self.wall = CameraWall(
            self._runtime,
            self.hub,
            self.directory,
            metrics,
            fps=settings.wall_fps,
            max_width=settings.wall_width,
            quality=settings.wall_quality,
        )
        self.announcements = CameraAnnouncements(self.directory, self._runtime)
        self.streams = Streams(
            leases, limit=settings.max_streams, per_session=settings.max_streams_per_session
        )
        # The past
        self.request_reads = RequestReads(
            bridge,
            leases,
            metrics,
            limit=settings.max_replays,
            per_session=settings.max_replays_per_session,
        )
        # Housekeeping runs where the frames are handled (the runtime's dispatcher), so the
        # two never touch the hub's state at once, whatever the async mode.
        self._tasks = [PeriodicTask("frame-hub", 1.0, self._runtime.serialized(self.hub.maintain))]

    # -- wiring

    def routes(self) -> Blueprint:
        """Every video route; the live ones hand what reaches into the past to the past's."""
        bp = Blueprint("video", __name__)
        cameras = CameraLookup(self.directory)
        sleep = self._runtime.sleep
        past = PastRoutes(
            cameras,
            self.request_reads,
            self._frames,
            self._detections,
            self._settings,
            self._metrics,
            sleep,
        )
        live = LiveRoutes(
            cameras,
            self.directory,
            self.hub,
            self.streams,
            past,
            self._settings,
            self._metrics,
            sleep,
        )
        past.register(bp)
        live.register(bp)
        return bp

    def attach(self, sockets: SocketServer) -> None:
        """The dashboard's side: the camera list, and the wall over Socket.IO."""
        self.wall.attach(sockets)
        self._tasks.append(self.announcements.attach(sockets))

    # -- lifecycle

    def start(self) -> None:
        self._directory_loop.start()
        self._directory_loop.assign_until_done(
            self.directory.assign_all, self.directory.assigned, what="the camera directory"
        )
        self._frames_loop.start()
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
