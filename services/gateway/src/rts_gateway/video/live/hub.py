"""Video fan-out: one Kafka read per pod and camera, shared by all of the pod's viewers.

A pod reads a camera's partition only while at least one local viewer watches a camera
on it (direct assignment, starting a second back so the first frame shows at once) and
releases it shortly after the last viewer leaves. Every viewer holds at most the newest
frame: a viewer that is slower than the camera skips frames instead of queueing them,
so it never grows memory and never slows the others; one that takes no frame at all for
too long is disconnected.

Everything here runs in the app context; Kafka calls go to the frames consumer's native
thread as commands.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

from rts_common.contracts import VideoFrame

from rts_gateway.bridge import Batch, ConsumerLoop, Flag
from rts_gateway.metrics import FRAME_SKIP_REASONS, GatewayMetrics
from rts_gateway.video.directory import CameraDirectory
from rts_gateway.video.live.assignments import FrameAssignments
from rts_gateway.video.mjpeg import Frame

log = logging.getLogger(__name__)


# A viewer that got no new frame for this long is nudged to re-send the last one, so a
# dead connection is noticed and proxies with idle timeouts keep the stream open.
KEEPALIVE_SECONDS = 10.0


class UnknownCamera(LookupError):
    pass


class Viewer:
    """One MJPEG connection's mailbox: room for exactly one frame."""

    def __init__(
        self,
        camera: str,
        max_fps: float | None,
        metrics: GatewayMetrics,
        kind: str = "browser",
        flag: Callable[[], Flag] = threading.Event,
    ) -> None:
        """`flag`: makes the mailbox's flag (the runtime's, cheaper than a green Event)."""
        self.camera = camera
        # An MJPEG stream's viewer ("browser", or "probe": the latency probe, so that
        # dashboards can tell it apart), or "wall" (the dashboard's tiles).
        self.kind = kind
        self.min_interval = 1.0 / max_fps if max_fps else 0.0
        self._skipped = {
            reason: metrics.frames_skipped.labels(camera=camera, reason=reason)
            for reason in FRAME_SKIP_REASONS
        }
        self._frame: Frame | None = None
        self._fresh = False
        self._ready = flag()
        self._next_allowed = 0.0
        self.handed_out_at: float | None = None
        self.waiting_since: float | None = None
        self.connection: socket.socket | None = None
        self.closed = False

    def offer(self, frame: Frame) -> None:
        if self._fresh:
            capped = time.monotonic() < self._next_allowed
            self._skipped["fps_cap" if capped else "slow_client"].inc()
        self._frame, self._fresh = frame, True
        self._ready.set()

    def take(self, timeout: float | None, sleep: Callable[[float], None]) -> Frame | None:
        """The newest frame not yet taken, waiting up to `timeout` (None: until one comes,
        the viewer is closed or nudged); None if none came."""
        self.handed_out_at = None
        wait = self._next_allowed - time.monotonic()
        if wait > 0:
            sleep(wait)  # the fps cap: frames offered meanwhile replace each other
        self.waiting_since = time.monotonic()
        # Without a timeout the wait schedules no timer: under eventlet, a timer per
        # viewer per frame was a tenth of the fan-out's cost.
        if not self._ready.wait(timeout) or self.closed:
            return None
        self.waiting_since = None
        self._ready.clear()
        if not self._fresh:
            return None  # nudged: nothing new
        frame, self._fresh = self._frame, False
        now = time.monotonic()
        self._next_allowed = now + self.min_interval
        self.handed_out_at = now
        return frame

    def last(self) -> Frame | None:
        return self._frame

    def nudge(self) -> None:
        """Wake a viewer waiting without a timeout, with no new frame (a keepalive)."""
        self._ready.set()

    def close(self) -> None:
        self.closed = True
        self._ready.set()


class FrameHub:
    def __init__(
        self,
        topic: str,
        consumer: ConsumerLoop[VideoFrame],
        directory: CameraDirectory,
        metrics: GatewayMetrics,
        *,
        start_seconds: float = 1.0,
        release_after: float = 5.0,
        stall_timeout: float = 15.0,
        peer_closed: Callable[[socket.socket], bool] = lambda _sock: False,
        flag: Callable[[], Flag] = threading.Event,
    ) -> None:
        """`peer_closed(sock)`: whether a viewer's client has gone (checked without
        reading), so a viewer that never got a frame to write is let go too; `flag`: makes
        a viewer's mailbox flag."""
        self.topic = topic
        self._directory = directory
        self._metrics = metrics
        self._stall_timeout = stall_timeout
        self._peer_closed = peer_closed
        self._flag = flag
        self._viewers: dict[str, set[Viewer]] = {}
        self._latest: dict[str, Frame] = {}
        self.assignments = FrameAssignments(
            topic,
            consumer,
            directory,
            metrics,
            start_seconds=start_seconds,
            release_after=release_after,
        )
        self._lock = threading.Lock()
        self._ignored = {
            reason: metrics.frames_ignored.labels(reason=reason)
            for reason in ("unknown_camera", "wrong_partition")
        }

    # -- viewers

    def open(self, camera: str, max_fps: float | None = None, kind: str = "browser") -> Viewer:
        """Register a viewer of `camera`; its first frame is the newest one available."""
        status = self._directory.get(camera)
        if status is None or status.partition is None:
            raise UnknownCamera(camera)
        viewer = Viewer(camera, max_fps, self._metrics, kind, self._flag)
        with self._lock:
            self._viewers.setdefault(camera, set()).add(viewer)
            if kind != "wall":
                self._metrics.viewers.labels(camera=camera, viewer_kind=kind).inc()
            if self.assignments.watch(status.partition, camera):
                # Frames kept from an earlier read of this partition are stale by now.
                for stale in [
                    c for c, f in self._latest.items() if f.partition == status.partition
                ]:
                    del self._latest[stale]
            latest = self._latest.get(camera)
            if latest is not None:
                viewer.offer(latest)
        return viewer

    def close(self, viewer: Viewer) -> None:
        with self._lock:
            viewers = self._viewers.get(viewer.camera, set())
            if viewer in viewers:
                viewers.discard(viewer)
                if viewer.kind != "wall":
                    self._metrics.viewers.labels(
                        camera=viewer.camera, viewer_kind=viewer.kind
                    ).dec()
                self.assignments.unwatch(viewer.camera)
        viewer.close()

    def close_all(self) -> None:
        with self._lock:
            viewers = [v for camera_viewers in self._viewers.values() for v in camera_viewers]
        for viewer in viewers:
            self.close(viewer)

    def snapshot(self, camera: str, wait: float, sleep: Callable[[float], None]) -> Frame | None:
        """The newest frame of `camera`, reading its partition for up to `wait` if needed."""
        latest = self._latest.get(camera)
        if latest is not None and latest.partition in self.assignments:
            return latest
        viewer = self.open(camera)
        try:
            return viewer.take(wait, sleep)
        finally:
            self.close(viewer)

    def viewer_count(self) -> int:
        return sum(len(v) for v in self._viewers.values())

    def maintain(self) -> None:
        """Periodic: release idle partitions, keep the others delivering, drop viewers
        that stalled or whose client is gone."""
        now = time.monotonic()
        with self._lock:
            for partition in self.assignments.maintain(self._newest_ts):
                for camera in [c for c, f in self._latest.items() if f.partition == partition]:
                    del self._latest[camera]
            viewers = [v for camera_viewers in self._viewers.values() for v in camera_viewers]
        for viewer in viewers:
            if (
                viewer.handed_out_at is not None
                and now - viewer.handed_out_at > self._stall_timeout
            ):
                self._drop(viewer, "stalled")
            elif viewer.connection is not None and self._peer_closed(viewer.connection):
                self._drop(viewer, "gone")
            elif (
                waiting := viewer.waiting_since
            ) is not None and now - waiting > KEEPALIVE_SECONDS:
                viewer.nudge()  # a quiet camera: its stream re-sends the last frame

    def _drop(self, viewer: Viewer, reason: str) -> None:
        log.info("dropping a viewer", extra={"camera": viewer.camera, "reason": reason})
        self._metrics.viewers_dropped.labels(reason=reason).inc()
        viewer.handed_out_at = None
        if viewer.connection is not None:
            # Unblocks the write the server is stuck in, in either worker type.
            with contextlib.suppress(OSError):
                viewer.connection.shutdown(socket.SHUT_RDWR)
        self.close(viewer)

    def _newest_ts(self, camera: str) -> int | None:
        frame = self._latest.get(camera)
        return frame.meta.ts_ns if frame else None

    # -- fed from Kafka

    def on_batch(self, batch: Batch[VideoFrame]) -> None:
        newest: dict[str, Frame] = {}
        for record in batch.records:
            frame = Frame.from_record(record)
            if frame.partition not in self.assignments:
                continue  # fetched before the partition was released: nobody wants it
            camera = frame.meta.camera
            # A key is whatever a producer wrote: only cameras of the directory, on the
            # partition they announced, reach viewers and get metric series.
            status = self._directory.get(camera)
            if status is None:
                self._ignored["unknown_camera"].inc()
                continue
            if status.partition != frame.partition:
                self._ignored["wrong_partition"].inc()
                continue
            self._metrics.frames_received.labels(camera=camera).inc()
            self._metrics.frame_size.observe(len(frame.jpeg))
            previous = self._latest.get(camera)
            if previous is not None and previous.offset > frame.offset:
                continue  # a re-delivery after a re-assignment; never go back in time
            self._latest[camera] = newest[camera] = frame
        for partition in {frame.partition for frame in newest.values()}:
            self.assignments.delivered(partition)
        # Only the newest frame of a batch reaches viewers: older ones in the same batch
        # are catch-up, not frames a viewer was too slow for.
        for camera, frame in newest.items():
            # A copy: in threading mode, requests open and close viewers meanwhile.
            for viewer in tuple(self._viewers.get(camera, ())):
                viewer.offer(frame)

    def describe(self) -> dict[str, Any]:
        return {
            "viewers": self.viewer_count(),
            "partitions": self.assignments.partitions,
            "cameras": {c: len(v) for c, v in self._viewers.items() if v},
        }
