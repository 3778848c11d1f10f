"""Video routes: thin handlers that pick a stream and hand it to a generator.

An unknown camera is a JSON 404 listing the known ones, and never creates a Kafka read.
A camera the request's sign-in does not cover is unknown to it (the same 404, and the
listing leaves it out); replaying the past needs an operator's sign-in. Streams count
against the process's and the session's limits (429 with Retry-After beyond them).
"""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import Iterator
from typing import Any

from flask import Blueprint, Response, jsonify, request

from rts_gateway.grants import Grant, LimitReached, current_grant, sees
from rts_gateway.responses import json_error, limited
from rts_gateway.video import mjpeg
from rts_gateway.video.directory import CameraDirectory
from rts_gateway.video.feature import Held, StreamSlot, Video
from rts_gateway.video.hub import UnknownCamera, Viewer
from rts_gateway.video.replay import BadReplayTime, OutOfRetention, iso_ms, parse_from

NO_CACHE = {
    "Cache-Control": "no-store",
    "Pragma": "no-cache",
    # NGINX (the baseline's proxy, and ingress-nginx) must not buffer a live stream.
    "X-Accel-Buffering": "no",
}


def video_routes(video: Video) -> Blueprint:
    bp = Blueprint("video", __name__)
    settings = video.settings
    hub, directory, runtime = video.hub, video.directory, video.runtime

    def unknown(camera: str) -> Response:
        known = _visible(directory, current_grant())
        return json_error(404, f"unknown camera {camera!r}", camera=camera, cameras=known)

    def stream(camera: str) -> Response:
        grant = current_grant()
        try:
            max_fps = _fps_cap(request.args.get("fps"))
        except ValueError as exc:
            return json_error(400, str(exc))
        status = directory.get(camera)
        if status is None or status.partition is None or not sees(grant, camera):
            return unknown(camera)
        # The latency probe says who it is, so dashboards can keep it apart from people.
        kind = "probe" if request.headers.get("X-Viewer-Kind") == "probe" else "browser"
        since = request.args.get("from")
        if since and grant is not None and not grant.operates:
            return json_error(403, "replaying recorded video needs an operator's sign-in")
        try:
            slot = video.open_stream(grant)
        except LimitReached as hit:
            return limited(hit)
        slot.connection = _stream_connection(request.environ, settings.stream_send_buffer)
        if since:
            body = _replay(video, slot, camera, status.partition, since, max_fps, kind)
        else:
            body = _live(video, slot, camera, max_fps, kind) or unknown(camera)
        if isinstance(body, Response):
            slot.release()
            return body
        return Response(Held(body, slot), mimetype=None, content_type=mjpeg.CONTENT_TYPE,
                        headers=NO_CACHE, direct_passthrough=True)  # fmt: skip

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


def _replay(
    video: Video, slot: StreamSlot, camera: str, partition: int, since: str,
    max_fps: float | None, kind: str,
) -> Iterator[bytes] | Response:  # fmt: skip
    try:
        from_ms = parse_from(since)
        replay = video.open_replay(current_grant(), camera, partition, from_ms)
    except BadReplayTime as exc:
        return json_error(400, str(exc))
    except OutOfRetention as exc:
        return json_error(
            416,
            "the requested time is outside what Kafka still holds for this camera",
            requested=iso_ms(exc.requested_ms),
            earliest=iso_ms(exc.earliest_ms),
        )
    except LimitReached as hit:
        return limited(hit)
    slot.closes(replay.close)

    def attach(viewer: Viewer) -> None:
        viewer.connection = slot.connection
        slot.closes(lambda: video.hub.close(viewer))

    return mjpeg.replay_then_live(
        replay, video.hub, max_fps, video.metrics, video.runtime.sleep, attach, kind
    )


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
