"""MJPEG over HTTP: `multipart/x-mixed-replace`, one JPEG per part.

Each part carries its own Content-Length (browsers and players can then read a part
without scanning for the boundary) and the frame's sequence number and capture time,
so a client can measure latency and detect skipped frames.
"""

from __future__ import annotations

import time
import weakref
from collections.abc import Callable, Iterator

from rts_gateway.metrics import GatewayMetrics
from rts_gateway.video.hub import Frame, FrameHub, UnknownCamera, Viewer
from rts_gateway.video.replay import Replay

BOUNDARY = "frame"
COUNT_EVERY = 15  # a second of a 15 fps camera
CONTENT_TYPE = f"multipart/x-mixed-replace; boundary={BOUNDARY}"

# Each frame's part, built once for all its viewers (a 60 KB copy per viewer per frame
# was a fifth of the fan-out's cost); forgotten with the frame.
_parts: weakref.WeakKeyDictionary[Frame, bytes] = weakref.WeakKeyDictionary()


def part(frame: Frame) -> bytes:
    built = _parts.get(frame)
    if built is None:
        built = _parts[frame] = _build(frame)
    return built


def _build(frame: Frame) -> bytes:
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
