"""Live routes: thin handlers that pick a stream and hand it to a generator.

Two of them also reach into the past: a stream may start there (`/stream/<camera>?from=`,
a replay that hands over to live) and a snapshot may be taken there
(`/snapshot/<camera>.jpg?at=`); the past's routes serve that part (`Past`). Every
parameter is checked before any Kafka read is opened: a bad one is a 400. Streams count
against the process's and the session's limits (429 with Retry-After beyond them).
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Callable, Iterator
from typing import Any, Protocol

from flask import Blueprint, Response, jsonify, request

from rts_gateway.grants import LimitReached, current_grant, sees
from rts_gateway.metrics import GatewayMetrics
from rts_gateway.responses import json_error, limited
from rts_gateway.settings import GatewaySettings
from rts_gateway.video.directory import CameraDirectory
from rts_gateway.video.http import (
    CameraLookup,
    close_with,
    jpeg_response,
    refuse_past,
    stream_response,
)
from rts_gateway.video.live.cameras import listing
from rts_gateway.video.live.hub import FrameHub, UnknownCamera
from rts_gateway.video.live.streams import Streams, StreamSlot, live_parts
from rts_gateway.video.times import parse_time


class Past(Protocol):
    """What a live route asks of the past (the past's routes, wired by the feature)."""

    def replay(
        self,
        camera: str,
        partition: int,
        from_ms: int,
        max_fps: float | None,
        closes: Callable[[Callable[[], None]], None],
    ) -> Iterator[bytes] | Response: ...

    def snapshot_at(self, camera: str, at: str) -> Response: ...


class LiveRoutes:
    def __init__(
        self,
        cameras: CameraLookup,
        directory: CameraDirectory,
        hub: FrameHub,
        streams: Streams,
        past: Past,
        settings: GatewaySettings,
        metrics: GatewayMetrics,
        sleep: Callable[[float], None],
    ) -> None:
        self.cameras = cameras
        self.directory = directory
        self.hub = hub
        self.streams = streams
        self.past = past
        self.settings = settings
        self.metrics = metrics
        self.sleep = sleep

    def stream(self, camera: str) -> Response:
        grant = current_grant()
        since = request.args.get("from")
        try:
            max_fps = _fps_cap(request.args.get("fps"))
            from_ms = parse_time("from", since) if since else None
        except ValueError as exc:
            return json_error(400, str(exc))
        partition = self.cameras.partition_of(camera)
        if partition is None:
            return self.cameras.unknown(camera)
        # The latency probe says who it is, so dashboards can keep it apart from people.
        kind = "probe" if request.headers.get("X-Viewer-Kind") == "probe" else "browser"
        if from_ms is not None and (refused := refuse_past(grant)) is not None:
            return refused
        try:
            slot = self.streams.open(grant)
        except LimitReached as hit:
            return limited(hit)
        slot.connection = _stream_connection(request.environ, self.settings.stream_send_buffer)
        body: Iterator[bytes] | Response | None
        if from_ms is not None:
            replayed = self.past.replay(camera, partition, from_ms, max_fps, slot.closes)
            body = (
                replayed
                if isinstance(replayed, Response)
                else self._then_live(replayed, slot, camera, max_fps, kind)
            )
        else:
            body = self._live(slot, camera, max_fps, kind) or self.cameras.unknown(camera)
        if isinstance(body, Response):
            slot.release()
            return body
        return close_with(stream_response(body), slot.release)

    def kaf_default(self) -> Response:
        camera = self.settings.default_camera or self.directory.first()
        if camera is not None and not sees(current_grant(), camera):
            visible = self.cameras.visible(current_grant())
            camera = visible[0] if visible else None
        if camera is None:
            return json_error(404, "no camera has published frames yet")
        return self.stream(camera)

    def snapshot(self, camera: str) -> Response:
        if not sees(current_grant(), camera):
            return self.cameras.unknown(camera)
        at = request.args.get("at")
        if at:
            return self.past.snapshot_at(camera, at)
        wait = self.settings.snapshot_wait_seconds
        try:
            frame = self.hub.snapshot(camera, wait, self.sleep)
        except UnknownCamera:
            return self.cameras.unknown(camera)
        if frame is None:
            return json_error(404, f"no frame from {camera!r} within {wait:g}s")
        return jpeg_response(frame.meta, frame.jpeg)

    def camera_list(self) -> Response:
        return jsonify({"cameras": listing(self.directory, self.hub, current_grant())})

    def register(self, bp: Blueprint) -> None:
        bp.add_url_rule("/stream/<camera>", "stream_camera", self.stream)
        bp.add_url_rule("/kaf", "kaf_default", self.kaf_default)
        bp.add_url_rule("/kaf/", "kaf_default", self.kaf_default)
        bp.add_url_rule("/kaf/<camera>", "kaf_camera", self.stream)
        bp.add_url_rule("/snapshot/<camera>.jpg", "snapshot", self.snapshot)
        bp.add_url_rule("/api/cameras", "cameras", self.camera_list)

    def _live(
        self, slot: StreamSlot, camera: str, max_fps: float | None, kind: str
    ) -> Iterator[bytes] | None:
        """The live stream's body, or None if the camera went away."""
        try:
            viewer = self.hub.open(camera, max_fps, kind)
        except UnknownCamera:
            return None
        viewer.connection = slot.connection
        slot.closes(lambda: self.hub.close(viewer))
        return live_parts(self.hub, viewer, self.metrics, self.sleep)

    def _then_live(
        self,
        replayed: Iterator[bytes],
        slot: StreamSlot,
        camera: str,
        max_fps: float | None,
        kind: str,
    ) -> Iterator[bytes]:
        """A replay, then the live stream of the same camera."""
        yield from replayed
        live = self._live(slot, camera, max_fps, kind)
        if live is not None:  # else the camera disappeared while replaying: the stream ends
            yield from live


def _stream_connection(environ: dict[str, Any], send_buffer: int) -> socket.socket | None:
    """The client's socket (to drop a stalled viewer), with a small send buffer."""
    connection: socket.socket | None = environ.get("gunicorn.socket")
    if connection is not None and send_buffer:
        with contextlib.suppress(OSError):
            connection.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, send_buffer)
    return connection


def _fps_cap(value: str | None) -> float | None:
    if value is None or value == "":
        return None
    try:
        fps = float(value)
    except ValueError:
        raise ValueError(f"fps={value!r}: give a number of frames per second") from None
    if not 0 < fps <= 120:
        raise ValueError(f"fps={value!r}: must be above 0 and at most 120")
    return fps
