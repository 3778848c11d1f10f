"""Routes into the past that Kafka still holds: a snapshot at a time, clips, the timeline,
and the replay a stream starts with (`/stream/<camera>?from=`, served by the live routes).

Each request parses every parameter, then finds the camera, and only then opens a Kafka
read of its own (reads.py), which is closed when the response ends. What the past can
refuse becomes a response: a camera the sign-in does not cover is unknown (404), a
sign-in that is not an operator's a 403, a moment no longer held a 416 (with the window
that is held), the per-process or per-session limit of reads a 429 with Retry-After,
Kafka not answering in time a 503.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from typing import Any

from flask import Blueprint, Response, jsonify, request
from rts_common.contracts import Detection, VideoFrame

from rts_gateway.bridge import Topic
from rts_gateway.grants import LimitReached, current_grant
from rts_gateway.metrics import GatewayMetrics
from rts_gateway.responses import json_error, limited
from rts_gateway.settings import GatewaySettings
from rts_gateway.video.http import NO_CACHE, CameraLookup, close_with, jpeg_response, refuse_past
from rts_gateway.video.past import clip, retention
from rts_gateway.video.past.avi import ClipTooLarge
from rts_gateway.video.past.reads import KafkaUnavailable, RequestReader, RequestReads
from rts_gateway.video.past.replay import Replay, replay_parts
from rts_gateway.video.past.retention import OutOfRetention
from rts_gateway.video.past.timeline import (
    TIMELINE_MAX_SECONDS,
    camera_timeline,
    parse_kinds,
    parse_step,
    parse_zone,
)
from rts_gateway.video.times import BadTime, iso_ms, parse_range, parse_time


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


def refusal(exc: BaseException) -> Response | None:
    """The answer to what the past refused (a moment Kafka no longer holds, Kafka not
    answering in time); None for anything else."""
    if isinstance(exc, OutOfRetention):
        return out_of_retention(exc)
    if isinstance(exc, KafkaUnavailable):
        return unavailable(exc)
    return None


class PastRoutes:
    """The handlers of the past, each with a Kafka read of its own."""

    def __init__(
        self,
        cameras: CameraLookup,
        reads: RequestReads,
        frames: Topic[VideoFrame],
        detections: Topic[Detection],
        settings: GatewaySettings,
        metrics: GatewayMetrics,
        sleep: Callable[[float], None],
    ) -> None:
        self.cameras = cameras
        self.reads = reads
        self.frames = frames
        self.detections = detections
        self.settings = settings
        self.metrics = metrics
        self.sleep = sleep

    def with_read(
        self,
        kind: str,
        topic: Topic[Any],
        camera: str,
        answer: Callable[[RequestReader[Any]], Response],
    ) -> Response:
        """`answer` with a read of its own; the read is closed with the response (a
        streamed one when its last byte is written or the client goes away)."""
        grant = current_grant()
        if (refused := refuse_past(grant)) is not None:
            return refused
        try:
            reader = self.reads.reader(kind, topic, camera, grant)
        except LimitReached as hit:
            return limited(hit)
        try:
            response = answer(reader)
        except BaseException as exc:
            reader.close()
            if (answered := refusal(exc)) is None:
                raise
            return answered
        return close_with(response, reader.close)

    def replay(
        self,
        camera: str,
        partition: int,
        from_ms: int,
        max_fps: float | None,
        closes: Callable[[Callable[[], None]], None],
    ) -> Iterator[bytes] | Response:
        """The MJPEG parts of the camera from `from_ms` to where live began, paced as
        captured (`closes` registers what to close when the stream ends); or why not.
        Whether the sign-in may replay is the caller's to ask first (`refuse_past`)."""
        try:
            reader = self.reads.reader("replay", self.frames, camera, current_grant())
        except LimitReached as hit:
            return limited(hit)
        replay = Replay(
            reader,
            camera,
            partition,
            from_ms,
            buffer_bytes=self.settings.replay_buffer_bytes,
            buffered=self.metrics.replay_buffered_bytes,
        )
        try:
            replay.start()
        except BaseException as exc:
            replay.close()
            if (answered := refusal(exc)) is None:
                raise
            return answered
        closes(replay.close)
        return replay_parts(replay, max_fps, self.metrics, self.sleep)

    def snapshot_at(self, camera: str, at: str) -> Response:
        """The frame whose capture time is nearest `at`."""
        try:
            at_ms = parse_time("at", at)
        except BadTime as exc:
            return json_error(400, str(exc))
        partition = self.cameras.partition_of(camera)
        if partition is None:
            return self.cameras.unknown(camera)

        def answer(reader: RequestReader[VideoFrame]) -> Response:
            win = retention.window(reader, reader.topic.name, partition)
            frame = retention.nearest_frame(
                reader,
                win,
                at_ms,
                max_bytes=self.settings.replay_buffer_bytes,
                timeout=self.settings.read_timeout_seconds,
            )
            if frame is None:
                seconds = retention.NEAREST_WINDOW_MS // 1000
                return json_error(
                    404,
                    f"no frame from {camera!r} within {seconds}s of {iso_ms(at_ms)}",
                    requested=iso_ms(at_ms),
                )
            return jpeg_response(frame.meta, frame.jpeg)

        return self.with_read("snapshot", self.frames, camera, answer)

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
        partition = self.cameras.partition_of(camera)
        if partition is None:
            return self.cameras.unknown(camera)
        read_bytes = self.settings.replay_buffer_bytes
        sent = self.metrics.clip_bytes_sent

        def answer(reader: RequestReader[VideoFrame]) -> Response:
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

        return self.with_read("clip", self.frames, camera, answer)

    def timeline(self, camera: str) -> Response:
        """The camera's retention window and its detections in [from, to) (default: the
        whole window): each one (for the boxes of a replay), or with `step` (ms) counted
        per bucket and kind (for the marks of a timeline, however many there are); `zone`
        keeps the detections in that zone (and the camera's offline and online marks)."""
        start, end = request.args.get("from"), request.args.get("to")
        now = time.time()
        try:
            kinds = parse_kinds(request.args.get("kinds"))
            zone = parse_zone(request.args.get("zone"))
            step_ms = parse_step(request.args.get("step"))
            end_ms = parse_time("to", end, now) if end else int(now * 1000)
            start_ms = None
            if start:
                start_ms = parse_range(
                    start, end, max_seconds=TIMELINE_MAX_SECONDS, now=now
                ).start_ms
        except ValueError as exc:
            return json_error(400, str(exc))
        partition = self.cameras.partition_of(camera)
        if partition is None:
            return self.cameras.unknown(camera)
        frames_topic = self.frames.name
        settings = self.settings

        def answer(reader: RequestReader[Detection]) -> Response:
            response = jsonify(
                camera_timeline(
                    reader,
                    camera,
                    frames_topic,
                    partition,
                    start_ms,
                    end_ms,
                    step_ms,
                    kinds=kinds,
                    read_bytes=settings.replay_buffer_bytes,
                    timeout=settings.read_timeout_seconds,
                    max_items=settings.timeline_max_detections,
                    zone=zone,
                )
            )
            response.headers.update(NO_CACHE)
            return response

        return self.with_read("timeline", self.detections, camera, answer)

    def register(self, bp: Blueprint) -> None:
        bp.add_url_rule("/clip/<camera>", "clip", self.clip)
        bp.add_url_rule("/api/timeline/<camera>", "timeline", self.timeline)


def _counted(chunks: Iterator[bytes], count: Callable[[int], None]) -> Iterator[bytes]:
    for chunk in chunks:
        yield chunk
        count(len(chunk))


def _file_safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", text)[:64] or "camera"
