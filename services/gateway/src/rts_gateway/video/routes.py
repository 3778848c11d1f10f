"""Video routes: thin handlers that pick a stream and hand it to a generator.

An unknown camera is a JSON 404 listing the known ones, and never creates a Kafka read.
A camera the request's sign-in does not cover is unknown to it (the same 404, and the
listing leaves it out); the past (replays, snapshots at a time, clips, the timeline)
needs an operator's sign-in. Every parameter is checked before any Kafka read is opened:
a bad one is a 400, a moment Kafka no longer holds a 416, Kafka not answering in time a
503. Streams and reads count against the process's and the session's limits (429 with
Retry-After beyond them).
"""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import Iterator
from typing import Any

from flask import Blueprint, Response, jsonify, request
from rts_common.signin import Grant

from rts_gateway.grants import LimitReached, current_grant, sees
from rts_gateway.responses import json_error, limited
from rts_gateway.video import mjpeg
from rts_gateway.video.directory import CameraDirectory
from rts_gateway.video.feature import StreamSlot, Video
from rts_gateway.video.history_routes import History, close_with, jpeg_response, stream_response
from rts_gateway.video.hub import UnknownCamera
from rts_gateway.video.times import parse_time


def video_routes(video: Video) -> Blueprint:
    bp = Blueprint("video", __name__)
    settings = video.settings
    hub, directory, runtime = video.hub, video.directory, video.runtime

    def unknown(camera: str) -> Response:
        known = _visible(directory, current_grant())
        return json_error(404, f"unknown camera {camera!r}", camera=camera, cameras=known)

    past = History(video, unknown)
    past.register(bp)

    def stream(camera: str) -> Response:
        grant = current_grant()
        since = request.args.get("from")
        try:
            max_fps = _fps_cap(request.args.get("fps"))
            from_ms = parse_time("from", since) if since else None
        except ValueError as exc:
            return json_error(400, str(exc))
        partition = past.partition_of(camera)
        if partition is None:
            return unknown(camera)
        # The latency probe says who it is, so dashboards can keep it apart from people.
        kind = "probe" if request.headers.get("X-Viewer-Kind") == "probe" else "browser"
        if from_ms is not None and (refused := past.refused(grant)) is not None:
            return refused
        try:
            slot = video.open_stream(grant)
        except LimitReached as hit:
            return limited(hit)
        slot.connection = _stream_connection(request.environ, settings.stream_send_buffer)
        if from_ms is not None:
            body = past.replay(camera, partition, from_ms, max_fps, slot, kind)
        else:
            body = _live(video, slot, camera, max_fps, kind) or unknown(camera)
        if isinstance(body, Response):
            slot.release()
            return body
        return close_with(stream_response(body), slot.release)

    @bp.get("/stream/<camera>")
    def stream_camera(camera: str) -> Response:
        return stream(camera)

    @bp.get("/kaf")
    @bp.get("/kaf/")
    def kaf_default() -> Response:
        camera = settings.default_camera or directory.first()
        if camera is not None and not sees(current_grant(), camera):
            visible = _visible(directory, current_grant())
            camera = visible[0] if visible else None
        if camera is None:
            return json_error(404, "no camera has published frames yet")
        return stream(camera)

    @bp.get("/kaf/<camera>")
    def kaf_camera(camera: str) -> Response:
        return stream(camera)

    @bp.get("/snapshot/<camera>.jpg")
    def snapshot(camera: str) -> Response:
        if not sees(current_grant(), camera):
            return unknown(camera)
        at = request.args.get("at")
        if at:
            return past.snapshot_at(camera, at)
        try:
            frame = hub.snapshot(camera, settings.snapshot_wait_seconds, runtime.sleep)
        except UnknownCamera:
            return unknown(camera)
        if frame is None:
            return json_error(
                404, f"no frame from {camera!r} within {settings.snapshot_wait_seconds:g}s"
            )
        return jpeg_response(frame.meta, frame.jpeg)

    @bp.get("/api/cameras")
    def cameras() -> Response:
        return jsonify({"cameras": _listing(video, current_grant())})

    return bp


def _listing(video: Video, grant: Grant | None) -> list[dict[str, Any]]:
    """What /api/cameras shows of the cameras this sign-in covers."""
    now = time.time()
    local = video.hub.describe()["cameras"]
    listed = []
    for view in video.directory.recent(now):
        if not sees(grant, view.status.camera):
            continue
        item = view.as_json(now)
        item["viewers_here"] = local.get(item["camera"], 0)
        item["stream"] = f"/stream/{item['camera']}"
        item["snapshot"] = f"/snapshot/{item['camera']}.jpg"
        item["timeline"] = f"/api/timeline/{item['camera']}"
        listed.append(item)
    return listed


def _visible(directory: CameraDirectory, grant: Grant | None) -> list[str]:
    """The recent cameras this sign-in covers."""
    return [v.status.camera for v in directory.recent() if sees(grant, v.status.camera)]


def _live(
    video: Video, slot: StreamSlot, camera: str, max_fps: float | None, kind: str
) -> Iterator[bytes] | None:
    """The live stream's body, or None if the camera went away."""
    try:
        viewer = video.hub.open(camera, max_fps, kind)
    except UnknownCamera:
        return None
    viewer.connection = slot.connection
    slot.closes(lambda: video.hub.close(viewer))
    return mjpeg.live(video.hub, viewer, video.metrics, video.runtime.sleep)


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
