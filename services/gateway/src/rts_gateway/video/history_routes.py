"""Routes into the past that Kafka still holds: a snapshot at a time, clips, the timeline.

Each request parses every parameter, then finds the camera, and only then opens a Kafka
read of its own (request_reads.py), which is closed when the response ends. What the past can
refuse becomes a response: a camera the sign-in does not cover is unknown (404), a
sign-in that is not an operator's a 403, a moment no longer held a 416 (with the window
that is held), the per-process or per-session limit of reads a 429 with Retry-After,
Kafka not answering in time a 503.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from flask import Blueprint, Response, jsonify, request
from rts_common.contracts import DETECTION_KINDS as KINDS
from rts_common.contracts import ZONE_NAME, Detection, FrameMeta, VideoFrame
from rts_common.signin import Grant

from rts_gateway.bridge import Topic
from rts_gateway.grants import LimitReached, current_grant, sees
from rts_gateway.responses import json_error, limited
from rts_gateway.video import clip, history, mjpeg
from rts_gateway.video.avi import ClipTooLarge
from rts_gateway.video.feature import StreamSlot, Video
from rts_gateway.video.history import OutOfRetention
from rts_gateway.video.hub import Viewer
from rts_gateway.video.request_reads import KafkaUnavailable, PartitionReader
from rts_gateway.video.times import BadTime, TimeRange, iso_ms, parse_range, parse_time

NO_CACHE = {
    "Cache-Control": "no-cache, no-store, must-revalidate",
    "Pragma": "no-cache",
    # NGINX (the baseline's proxy, and ingress-nginx) must not buffer a stream.
    "X-Accel-Buffering": "no",
}
# The detections' retention (rts_common.contracts): a timeline never asks for more.
TIMELINE_MAX_SECONDS = 24 * 3600
DETECTION_KINDS = frozenset(KINDS)
# A timeline's marks: at most this many buckets (a step that would make more is widened).
MAX_BUCKETS = 10_000
MIN_STEP_MS = 100


def out_of_retention(exc: OutOfRetention) -> Response:
    if exc.earliest_ms is None:
        message = "Kafka holds no video of this camera"
    elif exc.requested_ms > exc.latest_ms:
        message = "the requested time is in the future"
    else:
        message = "the requested time is older than what Kafka still holds for this camera"
    return json_error(
        416,
        message,
        requested=iso_ms(exc.requested_ms),
        earliest=iso_ms(exc.earliest_ms),
        latest=iso_ms(exc.latest_ms),
    )


def unavailable(exc: KafkaUnavailable) -> Response:
    return json_error(503, f"{exc}; try again")


def stream_response(body: Iterator[bytes]) -> Response:
    return Response(
        body,
        mimetype=None,
        content_type=mjpeg.CONTENT_TYPE,
        headers=NO_CACHE,
        direct_passthrough=True,
    )


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


def jpeg_response(meta: FrameMeta, jpeg: bytes) -> Response:
    headers = {**NO_CACHE, "X-Frame-Seq": str(meta.seq), "X-Frame-Timestamp": str(meta.ts_ns)}
    return Response(jpeg, content_type="image/jpeg", headers=headers)


class History:
    """The handlers, given the video feature; `unknown` answers for an unknown camera."""

    def __init__(self, video: Video, unknown: Callable[[str], Response]) -> None:
        self.video = video
        self.settings = video.settings
        self.unknown = unknown

    def partition_of(self, camera: str) -> int | None:
        """The camera's partition; None for a camera unknown here or to the sign-in."""
        status = self.video.directory.get(camera)
        if status is None or not sees(current_grant(), camera):
            return None
        return status.partition

    @staticmethod
    def refused(grant: Grant | None) -> Response | None:
        """A 403 unless the sign-in may look into the past (an operator's, or none)."""
        if grant is not None and not grant.operates:
            return json_error(403, "recorded video needs an operator's sign-in")
        return None

    def with_read(
        self,
        kind: str,
        topic: Topic[Any],
        camera: str,
        answer: Callable[[PartitionReader[Any]], Response],
    ) -> Response:
        """`answer` with a read of its own; the read is closed with the response (a
        streamed one when its last byte is written or the client goes away)."""
        grant = current_grant()
        if (refused := self.refused(grant)) is not None:
            return refused
        try:
            reader = self.video.open_read(kind, topic, camera, grant)
        except LimitReached as hit:
            return limited(hit)
        try:
            response = answer(reader)
        except OutOfRetention as exc:
            reader.close()
            return out_of_retention(exc)
        except KafkaUnavailable as exc:
            reader.close()
            return unavailable(exc)
        except BaseException:
            reader.close()
            raise
        return close_with(response, reader.close)

    def replay(
        self,
        camera: str,
        partition: int,
        from_ms: int,
        max_fps: float | None,
        slot: StreamSlot,
        kind: str,
    ) -> Iterator[bytes] | Response:
        """The body of the camera from `from_ms`, paced as captured, then live, for a
        viewer of `kind` in `slot` (which closes what it opens); or why not."""
        video = self.video
        try:
            opened = video.open_replay(current_grant(), camera, partition, from_ms)
        except OutOfRetention as exc:
            return out_of_retention(exc)
        except KafkaUnavailable as exc:
            return unavailable(exc)
        except LimitReached as hit:
            return limited(hit)
        slot.closes(opened.close)

        def attach(viewer: Viewer) -> None:
            viewer.connection = slot.connection
            slot.closes(lambda: video.hub.close(viewer))

        return mjpeg.replay_then_live(
            opened, video.hub, max_fps, video.metrics, video.runtime.sleep, attach, kind
        )

    def snapshot_at(self, camera: str, at: str) -> Response:
        """The frame whose capture time is nearest `at`."""
        try:
            at_ms = parse_time("at", at)
        except BadTime as exc:
            return json_error(400, str(exc))
        partition = self.partition_of(camera)
        if partition is None:
            return self.unknown(camera)

        def answer(reader: PartitionReader[VideoFrame]) -> Response:
            win = history.window(reader, reader.topic.name, partition)
            frame = history.nearest_frame(
                reader,
                win,
                at_ms,
                max_bytes=self.settings.replay_buffer_bytes,
                timeout=self.settings.read_timeout_seconds,
            )
            if frame is None:
                seconds = history.NEAREST_WINDOW_MS // 1000
                return json_error(
                    404,
                    f"no frame from {camera!r} within {seconds}s of {iso_ms(at_ms)}",
                    requested=iso_ms(at_ms),
                )
            return jpeg_response(frame.meta, frame.jpeg)

        return self.with_read("snapshot", self.video.frames_topic, camera, answer)

    def clip(self, camera: str) -> Response:
        """The frames of [from, to) as a Motion JPEG AVI file, streamed."""
        try:
            span = parse_range(
                request.args.get("from"),
                request.args.get("to"),
                max_seconds=self.settings.clip_max_seconds,
            )
        except BadTime as exc:
            return json_error(400, str(exc))
        partition = self.partition_of(camera)
        if partition is None:
            return self.unknown(camera)
        read_bytes = self.settings.replay_buffer_bytes
        sent = self.video.metrics.clip_bytes_sent

        def answer(reader: PartitionReader[VideoFrame]) -> Response:
            try:
                layout = clip.plan(
                    reader,
                    partition,
                    span,
                    read_bytes=read_bytes,
                    timeout=self.settings.read_timeout_seconds,
                )
            except ClipTooLarge as exc:
                return json_error(413, str(exc))
            if layout is None:
                return json_error(
                    404,
                    f"no frame from {camera!r} between {iso_ms(span.start_ms)} and "
                    f"{iso_ms(span.end_ms)}",
                )
            body = _counted(clip.write(reader, partition, layout, read_bytes=read_bytes), sent.inc)
            started = time.strftime("%Y%m%d-%H%M%S", time.gmtime(span.start_ms / 1000))
            name = f"{_file_safe(camera)}_{started}Z.avi"
            headers = {
                **NO_CACHE,
                "Content-Length": str(layout.total_bytes),
                "Content-Disposition": f'attachment; filename="{name}"',
                "X-Clip-Frames": str(len(layout.frames)),
                "X-Clip-Duration": f"{layout.duration_seconds:.3f}",
            }
            return Response(
                body, content_type="video/x-msvideo", headers=headers, direct_passthrough=True
            )

        return self.with_read("clip", self.video.frames_topic, camera, answer)

    def timeline(self, camera: str) -> Response:
        """The camera's retention window and its detections in [from, to) (default: the
        whole window): each one (for the boxes of a replay), or with `step` (ms) counted
        per bucket and kind (for the marks of a timeline, however many there are); `zone`
        keeps the detections in that zone (and the camera's offline and online marks)."""
        start, end = request.args.get("from"), request.args.get("to")
        now = time.time()
        try:
            kinds = _kinds(request.args.get("kinds"))
            zone = _zone(request.args.get("zone"))
            step_ms = _step(request.args.get("step"))
            end_ms = parse_time("to", end, now) if end else int(now * 1000)
            start_ms = None
            if start:
                start_ms = parse_range(
                    start, end, max_seconds=TIMELINE_MAX_SECONDS, now=now
                ).start_ms
        except ValueError as exc:
            return json_error(400, str(exc))
        partition = self.partition_of(camera)
        if partition is None:
            return self.unknown(camera)
        frames_topic = self.video.frames_topic.name
        settings = self.settings

        def answer(reader: PartitionReader[Detection]) -> Response:
            win = history.window(reader, frames_topic, partition)
            first = start_ms if start_ms is not None else (win.earliest_ms or win.now_ms)
            span = TimeRange(max(first, end_ms - TIMELINE_MAX_SECONDS * 1000), end_ms)
            body: dict[str, Any] = {
                "camera": camera,
                "earliest_ms": win.earliest_ms,
                "earliest": iso_ms(win.earliest_ms),
                "now_ms": win.now_ms,
                "from_ms": span.start_ms,
                "to_ms": span.end_ms,
            }
            partitions = (
                history.detection_partitions(reader, frames_topic, partition)
                if span.end_ms > span.start_ms
                else []
            )
            read_bytes, timeout = settings.replay_buffer_bytes, settings.read_timeout_seconds
            if step_ms is not None:
                step = max(step_ms, -(-(span.end_ms - span.start_ms) // MAX_BUCKETS))
                marks = history.detection_marks(
                    reader,
                    partitions,
                    span,
                    step,
                    kinds=kinds,
                    max_bytes=read_bytes,
                    timeout=timeout,
                    zone=zone,
                )
                body |= {"step_ms": step, "marks": marks.as_json(), "truncated": marks.truncated}
            else:
                found = history.detections_between(
                    reader,
                    partitions,
                    span,
                    kinds=kinds,
                    max_bytes=read_bytes,
                    timeout=timeout,
                    max_items=settings.timeline_max_detections,
                    zone=zone,
                )
                body |= {
                    "detections": [d.model_dump() for d in found.items],
                    "truncated": found.truncated,
                }
            response = jsonify(body)
            response.headers.update(NO_CACHE)
            return response

        return self.with_read("timeline", self.video.detections_topic, camera, answer)

    def register(self, bp: Blueprint) -> None:
        bp.add_url_rule("/clip/<camera>", "clip", self.clip)
        bp.add_url_rule("/api/timeline/<camera>", "timeline", self.timeline)


def _counted(chunks: Iterator[bytes], count: Callable[[int], None]) -> Iterator[bytes]:
    for chunk in chunks:
        yield chunk
        count(len(chunk))


def _file_safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", text)[:64] or "camera"


def _kinds(value: str | None) -> frozenset[str]:
    if not value:
        return DETECTION_KINDS
    kinds = frozenset(k.strip() for k in value.split(",") if k.strip())
    if not kinds or not kinds <= DETECTION_KINDS:
        raise ValueError(f"kinds: a comma-separated list of {', '.join(sorted(DETECTION_KINDS))}")
    return kinds


def _zone(value: str | None) -> str | None:
    if not value:
        return None
    if not ZONE_NAME.fullmatch(value):
        raise ValueError("zone: a zone's name (letters, digits, '_' and '-')")
    return value


def _step(value: str | None) -> int | None:
    if not value:
        return None
    if not value.isdigit() or len(value) > 9 or int(value) < MIN_STEP_MS:
        raise ValueError(f"step: a bucket length in milliseconds, at least {MIN_STEP_MS}")
    return int(value)
