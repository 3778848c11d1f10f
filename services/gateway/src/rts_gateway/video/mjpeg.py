"""MJPEG over HTTP: `multipart/x-mixed-replace`, one JPEG per part.

Each part carries its own Content-Length (browsers and players can then read a part
without scanning for the boundary) and the frame's sequence number and capture time,
so a client can measure latency and detect skipped frames.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

from rts_gateway.metrics import GatewayMetrics
from rts_gateway.video.hub import Frame, FrameHub, UnknownCamera, Viewer
from rts_gateway.video.replay import Replay

BOUNDARY = "frame"
CONTENT_TYPE = f"multipart/x-mixed-replace; boundary={BOUNDARY}"
# Re-send the last frame when a camera goes quiet, so a dead connection is noticed and
# proxies with idle timeouts keep the stream open.
KEEPALIVE_SECONDS = 10.0


def part(frame: Frame) -> bytes:
    meta = frame.meta
    head = (
        f"--{BOUNDARY}\r\n"
        "Content-Type: image/jpeg\r\n"
        f"Content-Length: {len(frame.jpeg)}\r\n"
        f"X-Camera: {meta.camera}\r\n"
        f"X-Frame-Seq: {meta.seq}\r\n"
        f"X-Frame-Timestamp: {meta.ts_ns}\r\n"
        "\r\n"
    ).encode("ascii")
    return head + frame.jpeg + b"\r\n"


def live(
    hub: FrameHub,
    viewer: Viewer,
    metrics: GatewayMetrics,
    sleep: Callable[[float], None],
) -> Iterator[bytes]:
    """Frames for one viewer until it disconnects or the gateway drops it."""
    camera = viewer.camera
    latency = metrics.frame_latency.labels(camera=camera, viewer_kind=viewer.kind)
    sent = metrics.frames_sent.labels(camera=camera, viewer_kind=viewer.kind)
    try:
        while not viewer.closed:
            frame = viewer.take(KEEPALIVE_SECONDS, sleep)
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
                sent.inc()
                metrics.frame_bytes_sent.inc(len(frame.jpeg))
    finally:
        hub.close(viewer)


def replay_then_live(
    replay: Replay,
    hub: FrameHub,
    max_fps: float | None,
    metrics: GatewayMetrics,
    sleep: Callable[[float], None],
    on_live: Callable[[Viewer], None],
    kind: str = "browser",
) -> Iterator[bytes]:
    """A replay paced as captured, then the live stream of the same camera."""
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
    try:
        viewer = hub.open(replay.camera, max_fps, kind)
    except UnknownCamera:
        return  # the camera disappeared while replaying: end the stream
    on_live(viewer)
    yield from live(hub, viewer, metrics, sleep)
