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

import contextlib
import logging
import socket
import time
from collections.abc import Callable
from typing import Any, TypeVar

from rts_common.contracts import VIDEO_CAMERAS, VIDEO_DETECTIONS, VIDEO_FRAMES
from rts_common.signin import Grant
from rts_common.tasks import PeriodicTask

from rts_gateway.bridge import ConsumerLoop, Future, KafkaBridge, Topic
from rts_gateway.grants import Lease, Leases, LimitReached
from rts_gateway.metrics import GatewayMetrics
from rts_gateway.settings import GatewaySettings
from rts_gateway.sockets import ALL_CAMERAS_ROOM, Payload, SocketServer
from rts_gateway.video.directory import CameraDirectory
from rts_gateway.video.hub import FrameHub
from rts_gateway.video.replay import Replay
from rts_gateway.video.request_reads import PartitionReader, ReadSlots
from rts_gateway.video.wall import CameraWall

log = logging.getLogger(__name__)

T = TypeVar("T")

CAMERAS_EVERY_SECONDS = 5.0


class StreamSlot:
    """One MJPEG response's place among the gateway's streams and its session's.

    Releasing it (the response ended) closes what it streams; ending it (its session was
    revoked or expired) also cuts the connection, which may be stuck writing to a slow
    client.
    """

    def __init__(self, on_release: Callable[[], None]) -> None:
        self._on_release = on_release
        self._closers: list[Callable[[], None]] = []
        self.lease: Lease | None = None
        self.connection: socket.socket | None = None
        self._released = False

    def closes(self, closer: Callable[[], None]) -> None:
        """Run `closer` when the slot is released (or at once if it already was)."""
        if self._released:
            closer()
        else:
            self._closers.append(closer)

    def end(self) -> None:
        if self.connection is not None:
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)
        self.release()

    def release(self) -> None:
        if self._released:
            return
        self._released = True
        for closer in self._closers:
            closer()
        if self.lease is not None:
            self.lease.release()
        self._on_release()


class Video:
    def __init__(
        self,
        settings: GatewaySettings,
        bridge: KafkaBridge,
        metrics: GatewayMetrics,
        leases: Leases,
    ) -> None:
        self.settings = settings
        self.metrics = metrics
        self.leases = leases
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
            flag=self.runtime.flag,
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
        self._streams = 0
        self.request_reads = ReadSlots(settings.max_replays, metrics)
        # Housekeeping runs where the frames are handled (the runtime's dispatcher), so the
        # two never touch the hub's state at once, whatever the async mode.
        self._tasks = [PeriodicTask("frame-hub", 1.0, self.runtime.serialized(self.hub.maintain))]

    # -- wiring

    def attach(self, sockets: SocketServer) -> None:
        """The dashboard's side: the camera list, and the wall over Socket.IO."""
        self.wall.attach(sockets)

        def listing_for(cameras: frozenset[str] | None) -> list[dict[str, Any]]:
            listed = self.directory.listing()
            return [c for c in listed if cameras is None or c["camera"] in cameras]

        def announce() -> None:
            # Each dashboard gets the cameras its sign-in covers, and no other name.
            scoped = sockets.scoped()
            sockets.emit("cameras", listing_for(None), to=ALL_CAMERAS_ROOM, local=True)
            for sid, cameras in scoped.items():
                sockets.emit("cameras", listing_for(cameras), to=sid, local=True)

        def greet(sid: str) -> None:
            grant = sockets.grant(sid)
            cameras = grant.cameras if grant is not None else None
            sockets.emit("cameras", listing_for(cameras), to=sid, local=True)

        def wall(sid: str, options: Payload) -> Payload:
            on = not isinstance(options, dict) or bool(options.get("on", True))
            if on:
                self.wall.join(sid, sockets.grant(sid))
            else:
                self.wall.leave(sid)
            return {"wall": on, "cameras": self.wall.visible_to(sockets.grant(sid))}

        sockets.on_connect(greet)
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

    # -- streams and requests into the past, within the limits

    def open_stream(self, grant: Grant | None) -> StreamSlot:
        """A place for one more MJPEG stream, or LimitReached (per process, per session)."""
        if self._streams >= self.settings.max_streams:
            self.leases.hit("streams")
            raise LimitReached("streams", "this gateway serves as many streams as it can")
        slot = StreamSlot(self._stream_closed)
        slot.lease = self.leases.hold(
            grant, "stream", slot.end, limit=self.settings.max_streams_per_session
        )
        self._streams += 1
        return slot

    def _stream_closed(self) -> None:
        self._streams -= 1

    def open_read(
        self, kind: str, topic: Topic[T], camera: str, grant: Grant | None
    ) -> PartitionReader[T]:
        """A consumer for one request about `camera` (a replay, a snapshot at a time, a
        clip, a timeline), or LimitReached before any Kafka resource is made: per process
        (replays and recordings together), and per session and kind. The caller closes
        it when the request ends; a revoked session closes it at once."""
        if not self.request_reads.acquire(kind):
            self.leases.hit("replays")
            raise LimitReached(
                "replays", "too many replays and recordings open on this gateway; try again"
            )
        opened: list[PartitionReader[T]] = []
        try:
            lease = self.leases.hold(
                grant,
                kind,
                lambda: opened[0].close() if opened else None,
                limit=self.settings.max_replays_per_session,
            )
        except LimitReached:
            self.request_reads.release(kind)
            raise

        def closed() -> None:
            self.request_reads.release(kind)
            if lease is not None:
                lease.release()

        try:
            reader = PartitionReader(
                self._bridge, topic, name=f"{kind}-{camera}", key=camera, on_close=closed
            )
        except BaseException:
            closed()
            raise
        opened.append(reader)
        return reader

    def open_replay(self, grant: Grant | None, camera: str, partition: int, from_ms: int) -> Replay:
        """A replay positioned at `from_ms`; raises LimitReached (see open_read), or
        OutOfRetention (closing what it opened) when Kafka no longer holds that moment."""
        reader = self.open_read("replay", self.frames_topic, camera, grant)
        replay = Replay(
            reader,
            camera,
            partition,
            from_ms,
            buffer_bytes=self.settings.replay_buffer_bytes,
            buffered=self.metrics.replay_buffered_bytes,
        )
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
