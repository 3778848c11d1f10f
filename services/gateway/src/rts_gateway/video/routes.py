"""Video routes: thin handlers that pick a stream and hand it to a generator.

An unknown camera is a JSON 404 listing the known ones, and never creates a Kafka read.
"""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import Iterator
from typing import Any

from flask import Blueprint, Response, jsonify, request

from rts_gateway.responses import json_error
from rts_gateway.video import mjpeg
from rts_gateway.video.feature import Video
from rts_gateway.video.hub import UnknownCamera, Viewer
from rts_gateway.video.replay import BadReplayTime, OutOfRetention, iso_ms, parse_from

NO_CACHE = {
    "Cache-Control": "no-cache, no-store, must-revalidate",
    "Pragma": "no-cache",
    # NGINX (the baseline's proxy, and ingress-nginx) must not buffer a live stream.
    "X-Accel-Buffering": "no",
}


def video_routes(video: Video) -> Blueprint:
    bp = Blueprint("video", __name__)
    settings, metrics = video.settings, video.metrics
    hub, directory, runtime = video.hub, video.directory, video.runtime

    def unknown(camera: str) -> Response:
        known = [v.status.camera for v in directory.recent()]
        return json_error(404, f"unknown camera {camera!r}", camera=camera, cameras=known)

    def stream(camera: str) -> Response:
        try:
            max_fps = _fps_cap(request.args.get("fps"))
        except ValueError as exc:
            return json_error(400, str(exc))
        status = directory.get(camera)
        if status is None or status.partition is None:
            return unknown(camera)
        connection = _stream_connection(request.environ, settings.stream_send_buffer)
        # The latency probe says who it is, so dashboards can keep it apart from people.
        kind = "probe" if request.headers.get("X-Viewer-Kind") == "probe" else "browser"
        since = request.args.get("from")
        if since:
            return replay_stream(camera, status.partition, since, max_fps, connection, kind)
        try:
            viewer = hub.open(camera, max_fps, kind)
        except UnknownCamera:
            return unknown(camera)
        viewer.connection = connection
        return stream_response(mjpeg.live(hub, viewer, metrics, runtime.sleep))

    def replay_stream(
        camera: str,
        partition: int,
        since: str,
        max_fps: float | None,
        connection: socket.socket | None,
        kind: str,
    ) -> Response:
        try:
            from_ms = parse_from(since)
            replay = video.open_replay(camera, partition, from_ms)
        except BadReplayTime as exc:
            return json_error(400, str(exc))
        except OutOfRetention as exc:
            return json_error(
                416,
                "the requested time is outside what Kafka still holds for this camera",
                requested=iso_ms(exc.requested_ms),
                earliest=iso_ms(exc.earliest_ms),
            )
        if replay is None:
            return json_error(429, "too many replays on this gateway; try again later")

        def attach(viewer: Viewer) -> None:
            viewer.connection = connection

        return stream_response(
            mjpeg.replay_then_live(replay, hub, max_fps, metrics, runtime.sleep, attach, kind)
        )

    def stream_response(body: Iterator[bytes]) -> Response:
        return Response(body, mimetype=None, content_type=mjpeg.CONTENT_TYPE, headers=NO_CACHE,
                        direct_passthrough=True)  # fmt: skip

    @bp.get("/stream/<camera>")
    def stream_camera(camera: str) -> Response:
        return stream(camera)

    @bp.get("/kaf")
    @bp.get("/kaf/")
    def kaf_default() -> Response:
        camera = settings.default_camera or directory.first()
        if camera is None:
            return json_error(404, "no camera has published frames yet")
        return stream(camera)

    @bp.get("/kaf/<camera>")
    def kaf_camera(camera: str) -> Response:
        return stream(camera)

    @bp.get("/snapshot/<camera>.jpg")
    def snapshot(camera: str) -> Response:
        try:
            frame = hub.snapshot(camera, settings.snapshot_wait_seconds, runtime.sleep)
        except UnknownCamera:
            return unknown(camera)
        if frame is None:
            return json_error(
                404, f"no frame from {camera!r} within {settings.snapshot_wait_seconds:g}s"
            )
        headers = {
            **NO_CACHE,
            "X-Frame-Seq": str(frame.meta.seq),
            "X-Frame-Timestamp": str(frame.meta.ts_ns),
        }
        return Response(frame.jpeg, content_type="image/jpeg", headers=headers)

    @bp.get("/api/cameras")
    def cameras() -> Response:
        now = time.time()
        local = hub.describe()["cameras"]
        listed = []
        for view in directory.recent(now):
            item = view.as_json(now)
            item["viewers_here"] = local.get(item["camera"], 0)
            item["stream"] = f"/stream/{item['camera']}"
            item["snapshot"] = f"/snapshot/{item['camera']}.jpg"
            listed.append(item)
        return jsonify({"cameras": listed})

    return bp


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
