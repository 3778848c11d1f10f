"""What the live path and the past answer alike: the camera a request may name, headers
that keep streams out of caches and proxy buffers, MJPEG and JPEG responses, and closing
what a response holds when it ends.

An unknown camera is a JSON 404 listing the known ones, and never creates a Kafka read.
A camera the request's sign-in does not cover is unknown to it (the same 404, and the
listing leaves it out). The past (replays, snapshots at a time, clips, the timeline)
needs an operator's sign-in (403 otherwise).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

from flask import Response
from rts_common.contracts import FrameMeta
from rts_common.signin import Grant

from rts_gateway.grants import current_grant, sees
from rts_gateway.responses import json_error
from rts_gateway.video import mjpeg
from rts_gateway.video.directory import CameraDirectory

NO_CACHE = {
    "Cache-Control": "no-cache, no-store, must-revalidate",
    "Pragma": "no-cache",
    # NGINX (the baseline's proxy, and ingress-nginx) must not buffer a stream.
    "X-Accel-Buffering": "no",
}


class CameraLookup:
    """The directory as a request sees it: only the cameras its sign-in covers."""

    def __init__(self, directory: CameraDirectory) -> None:
        self.directory = directory

    def partition_of(self, camera: str) -> int | None:
        """The camera's partition; None for a camera unknown here or to the sign-in."""
        status = self.directory.get(camera)
        if status is None or not sees(current_grant(), camera):
            return None
        return status.partition

    def visible(self, grant: Grant | None) -> list[str]:
        """The recent cameras this sign-in covers."""
        return [v.status.camera for v in self.directory.recent() if sees(grant, v.status.camera)]

    def unknown(self, camera: str) -> Response:
        known = self.visible(current_grant())
        return json_error(404, f"unknown camera {camera!r}", camera=camera, cameras=known)


def refuse_past(grant: Grant | None) -> Response | None:
    """A 403 unless the sign-in may look into the past (an operator's, or none)."""
    if grant is not None and not grant.operates:
        return json_error(403, "recorded video needs an operator's sign-in")
    return None


def stream_response(body: Iterator[bytes]) -> Response:
    return Response(
        body,
        mimetype=None,
        content_type=mjpeg.CONTENT_TYPE,
        headers=NO_CACHE,
        direct_passthrough=True,
    )


def jpeg_response(meta: FrameMeta, jpeg: bytes) -> Response:
    headers = {**NO_CACHE, "X-Frame-Seq": str(meta.seq), "X-Frame-Timestamp": str(meta.ts_ns)}
    return Response(jpeg, content_type="image/jpeg", headers=headers)


def close_with(response: Response, close: Callable[[], None]) -> Response:
    """Run `close` when the response ends. A streamed body (direct passthrough) goes to the
    server as it is, so Werkzeug's call_on_close would never run, and a generator closed
    before its first item skips its own `finally`: the body itself closes then."""
    if response.direct_passthrough:
        response.response = _Closing(response.response, close)
    else:
        response.call_on_close(close)
    return response


class _Closing:
    """A response body whose close() (the WSGI server's, at the end) also runs `close`."""

    def __init__(self, body: Iterable[Any], close: Callable[[], None]) -> None:
        self._body = body
        self._close = close

    def __iter__(self) -> Iterator[Any]:
        return iter(self._body)

    def close(self) -> None:
        try:
            closer = getattr(self._body, "close", None)
            if closer is not None:
                closer()
        finally:
            self._close()
