"""MJPEG streams: each one's place within the limits, and the live body it sends.

A stream counts against the process's `max_streams` and its session's
`max_streams_per_session` (LimitReached beyond either) until its response ends; a revoked
or expired session ends its streams at once, cutting the connection, which may be stuck
writing to a slow client.
"""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import Callable, Iterator

from rts_common.signin import Grant

from rts_gateway.grants import Lease, Leases, LimitReached
from rts_gateway.metrics import GatewayMetrics
from rts_gateway.video.live.hub import FrameHub, Viewer
from rts_gateway.video.mjpeg import part

COUNT_EVERY = 15  # a second of a 15 fps camera


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


class Streams:
    """The streams open on this process, within its limit and each session's."""

    def __init__(self, leases: Leases, *, limit: int, per_session: int) -> None:
        self._leases = leases
        self._limit = limit
        self._per_session = per_session
        self._open = 0

    def open(self, grant: Grant | None) -> StreamSlot:
        """A place for one more MJPEG stream, or LimitReached (per process, per session)."""
        if self._open >= self._limit:
            self._leases.hit("streams")
            raise LimitReached("streams", "this gateway serves as many streams as it can")
        slot = StreamSlot(self._closed)
        slot.lease = self._leases.hold(grant, "stream", slot.end, limit=self._per_session)
        self._open += 1
        return slot

    def _closed(self) -> None:
        self._open -= 1


def live_parts(
    hub: FrameHub,
    viewer: Viewer,
    metrics: GatewayMetrics,
    sleep: Callable[[float], None],
) -> Iterator[bytes]:
    """Frames for one viewer until it disconnects or the gateway drops it."""
    camera = viewer.camera
    latency = metrics.frame_latency.labels(camera=camera, viewer_kind=viewer.kind)
    sent = metrics.frames_sent.labels(camera=camera, viewer_kind=viewer.kind)
    # Counted here and added to the counters every COUNT_EVERY frames: a metric's lock
    # per frame per viewer is thousands a second at a thousand viewers.
    frames = sent_bytes = 0
    try:
        while not viewer.closed:
            frame = viewer.take(None, sleep)  # nudged by the hub when the camera is quiet
            fresh = frame is not None
            if frame is None:
                frame = viewer.last()
                if frame is None or viewer.closed:
                    continue
            yield part(frame)
            # The generator resumes once the server has written the part, so this is the
            # latency to the viewer's socket, including any backpressure from the viewer.
            if fresh:
                latency.observe(max(0.0, time.time() - frame.meta.ts_ns / 1e9))
                frames, sent_bytes = frames + 1, sent_bytes + len(frame.jpeg)
                if frames >= COUNT_EVERY:
                    sent.inc(frames)
                    metrics.frame_bytes_sent.inc(sent_bytes)
                    frames = sent_bytes = 0
    finally:
        if frames:
            sent.inc(frames)
            metrics.frame_bytes_sent.inc(sent_bytes)
        hub.close(viewer)
