"""The camera wall: every camera as a small live tile, over each browser's one WebSocket.

Browsers open only about six HTTP/1.1 connections per host, so a wall of MJPEG `<img>`
tags stalls past six cameras. Instead, while at least one browser on this replica shows
the wall, the replica watches every camera through the same fan-out as MJPEG viewers
(at a low frame rate), shrinks each frame, and emits it as a binary Socket.IO message to
that camera's local wall room only: each replica serves its own browsers from its own
reads, and a browser is in the rooms of the cameras its sign-in covers.
"""

from __future__ import annotations

import io
import logging

from PIL import Image
from rts_common.contracts import CameraStatus
from rts_common.signin import Grant

from rts_gateway.bridge import Runtime
from rts_gateway.metrics import GatewayMetrics
from rts_gateway.sockets import Payload, SocketServer
from rts_gateway.video.directory import CameraDirectory
from rts_gateway.video.live.hub import FrameHub, UnknownCamera, Viewer
from rts_gateway.video.mjpeg import Frame

log = logging.getLogger(__name__)


def wall_room(camera: str) -> str:
    return f"wall:{camera}"


def thumbnail(jpeg: bytes, max_width: int, quality: int) -> tuple[bytes, int, int]:
    """A JPEG at most `max_width` wide; returns (bytes, width, height).

    `draft` lets the JPEG decoder scale by 1/2, 1/4 or 1/8 while decoding (in the DCT
    domain), which costs a fraction of a full decode; a final resize trims the rest.
    """
    with Image.open(io.BytesIO(jpeg)) as image:
        width, height = image.size
        if width <= max_width:
            return jpeg, width, height
        target = (max_width, max(1, height * max_width // width))
        image.draft("RGB", target)
        small = image.convert("RGB").resize(target, Image.Resampling.BILINEAR)
        out = io.BytesIO()
        small.save(out, "JPEG", quality=quality)
        return out.getvalue(), target[0], target[1]


class CameraWall:
    def __init__(
        self,
        runtime: Runtime,
        hub: FrameHub,
        directory: CameraDirectory,
        metrics: GatewayMetrics,
        *,
        fps: float,
        max_width: int,
        quality: int,
    ) -> None:
        self._runtime = runtime
        self._hub = hub
        self._directory = directory
        self._metrics = metrics
        self._fps = fps
        self._max_width = max_width
        self._quality = quality
        self._members: dict[str, Grant | None] = {}
        self._viewers: dict[str, Viewer] = {}
        self._sockets: SocketServer | None = None
        directory.on_change(self._camera_changed)

    def attach(self, sockets: SocketServer) -> None:
        """Serve the `wall` event (`{"on": true|false}`) and forget clients that leave."""
        self._sockets = sockets

        def toggle(sid: str, options: Payload) -> Payload:
            on = not isinstance(options, dict) or bool(options.get("on", True))
            if on:
                self.join(sid, sockets.grant(sid))
            else:
                self.leave(sid)
            return {"wall": on, "cameras": self.visible_to(sockets.grant(sid))}

        sockets.on_disconnect(self.leave)
        sockets.on("wall", toggle)

    @property
    def watching(self) -> list[str]:
        return sorted(self._viewers)

    def visible_to(self, grant: Grant | None) -> list[str]:
        return [c for c in self.watching if grant is None or grant.sees(c)]

    def join(self, sid: str, grant: Grant | None) -> None:
        first = not self._members
        self._members[sid] = grant
        if first:
            for view in self._directory.recent():
                self._watch(view.status.camera)
        for camera in list(self._viewers):
            self._enter(sid, camera)

    def leave(self, sid: str) -> None:
        if sid not in self._members:
            return
        del self._members[sid]
        if self._sockets is not None:
            for camera in list(self._viewers):
                self._sockets.leave_room(sid, wall_room(camera))
        if not self._members:
            for viewer in list(self._viewers.values()):
                self._hub.close(viewer)
            self._viewers.clear()

    def _enter(self, sid: str, camera: str) -> None:
        grant = self._members.get(sid)
        if self._sockets is not None and (grant is None or grant.sees(camera)):
            self._sockets.enter_room(sid, wall_room(camera))

    def _camera_changed(self, status: CameraStatus) -> None:
        if self._members and status.camera not in self._viewers:
            self._watch(status.camera)

    def _watch(self, camera: str) -> None:
        try:
            viewer = self._hub.open(camera, self._fps, kind="wall")
        except UnknownCamera:
            return
        self._viewers[camera] = viewer
        for sid in list(self._members):
            self._enter(sid, camera)
        self._runtime.spawn(self._relay, viewer)

    def _relay(self, viewer: Viewer) -> None:
        while not viewer.closed:
            frame = viewer.take(5.0, self._runtime.sleep)
            if frame is None:
                continue
            try:
                self._send(frame)
            except Exception:
                log.exception("camera wall frame failed", extra={"camera": viewer.camera})
        # By now the wall may have been turned off and on again: the camera's entry is
        # then a newer viewer, which stays.
        if self._viewers.get(viewer.camera) is viewer:
            del self._viewers[viewer.camera]

    def _send(self, frame: Frame) -> None:
        if self._sockets is None:
            return
        jpeg, width, height = self._runtime.offload(
            thumbnail, frame.jpeg, self._max_width, self._quality
        )
        meta = frame.meta
        tile: Payload = {
            "camera": meta.camera,
            "seq": meta.seq,
            "ts": meta.ts_ns,
            "width": width,
            "height": height,
            "source_width": meta.width,
            "source_height": meta.height,
            "jpeg": jpeg,
        }
        # Each replica serves its own wall clients from its own reads: never relayed.
        self._sockets.emit("wall_frame", tile, to=wall_room(meta.camera), local=True)
        self._metrics.wall_frames.inc()
