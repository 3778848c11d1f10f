"""Decoders: a topic's record (key, value, headers) into its message type, or BadMessage.

One function per topic, named by the topic table (contracts/topics.py), so every consumer
refuses bad records the same way; a faster decoder for a hot topic replaces its function
here, without touching the messages or the consumers.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Callable
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from rts_common.contracts.messages import (
    BadMessage,
    CameraStatus,
    DeadLetter,
    Detection,
    FrameMeta,
    Headers,
    QoeCheckpoint,
    SessionRecord,
    VideoFrame,
    camera_id,
    check_jpeg,
    decode_headers,
)
from rts_common.events import PlaybackEventStruct, playback_event_from_json

T = TypeVar("T")

# key, value, headers -> the topic's record type, or BadMessage
Decoder = Callable[[bytes | None, bytes | None, Headers | None], T]


def decode_frame(key: bytes | None, value: bytes | None, headers: Headers | None) -> VideoFrame:
    meta, jpeg = FrameMeta.from_record(key, headers), check_jpeg(value)
    crc = decode_headers(headers).get("crc")
    if crc is not None and (not crc.isdigit() or int(crc) != zlib.crc32(jpeg)):
        raise BadMessage("checksum", f"crc {crc!r} does not match the JPEG")
    return VideoFrame(meta, jpeg)


M = TypeVar("M", bound=BaseModel)

# Far above any real record of these topics: a bigger one is junk, refused unparsed.
JSON_RECORD_LIMIT = 64 * 1024


def _json_record(value: bytes | None, limit: int = JSON_RECORD_LIMIT) -> bytes:
    """A record's value, if it may be JSON worth reading."""
    if not value:
        raise BadMessage("empty")
    if len(value) > limit:
        raise BadMessage("too_large", f"{len(value)} > {limit} bytes")
    return value


def _refused(exc: ValidationError) -> BadMessage:
    # Broken JSON (bad UTF-8, nesting past the parser's limit) or a wrong shape.
    reason = "not_json" if exc.errors()[0]["type"] == "json_invalid" else "invalid"
    return BadMessage(reason, str(exc).splitlines()[1].strip()[:300])


def _model_decoder(model: type[M], limit: int = JSON_RECORD_LIMIT) -> Decoder[M]:
    def decode(_key: bytes | None, value: bytes | None, _headers: Headers | None) -> M:
        data = _json_record(value, limit)
        try:
            return model.model_validate_json(data)
        except ValidationError as exc:
            raise _refused(exc) from None

    return decode


decode_detection: Decoder[Detection] = _model_decoder(Detection)


def decode_playback_event(
    _key: bytes | None, value: bytes | None, _headers: Headers | None
) -> PlaybackEventStruct:
    """The gateway's hot path: msgspec reads the event, the model (PlaybackEvent) judges
    what msgspec refuses, with the same reasons as every other JSON topic."""
    data = _json_record(value)
    try:
        return playback_event_from_json(data)
    except ValidationError as exc:
        raise _refused(exc) from None


_decode_status: Decoder[CameraStatus] = _model_decoder(CameraStatus)


def decode_camera_status(
    key: bytes | None, value: bytes | None, headers: Headers | None
) -> CameraStatus | None:
    """A camera's newest status; None for a tombstone (the camera was removed). The key
    names the camera: compaction keeps one status per key, so a status under another
    camera's key would replace that camera's."""
    camera = camera_id(key)
    if value is None:
        return None
    status = _decode_status(key, value, headers)
    if status.camera != camera:
        raise BadMessage("key_mismatch", f"key {camera!r}, camera {status.camera!r}")
    return status


def decode_session_record(
    key: bytes | None, value: bytes | None, headers: Headers | None
) -> SessionRecord | None:
    """A sign-in fact; None for a tombstone (compaction's way to forget one)."""
    if value is None:
        if not key:
            raise BadMessage("missing_key")
        return None
    return _decode_session_record(key, value, headers)


_decode_session_record: Decoder[SessionRecord] = _model_decoder(SessionRecord)


def decode_broadcast(
    _key: bytes | None, value: bytes | None, _headers: Headers | None
) -> list[dict[str, Any]]:
    """A batch of python-socketio pub/sub messages (JSON objects)."""
    try:
        batch = json.loads(value or b"")
    except (ValueError, RecursionError):
        raise BadMessage("not_json") from None
    if not isinstance(batch, list) or not all(isinstance(m, dict) for m in batch):
        raise BadMessage("invalid", "not a list of objects")
    return batch


def decode_dead_letter(
    key: bytes | None, value: bytes | None, headers: Headers | None
) -> DeadLetter:
    found = decode_headers(headers)
    try:
        return DeadLetter(
            found["dlq.reason"],
            found.get("dlq.detail", ""),
            found["dlq.topic"],
            int(found["dlq.partition"]),
            int(found["dlq.offset"]),
            key,
            value,
        )
    except KeyError as missing:
        raise BadMessage("missing_header", str(missing)) from None
    except ValueError as bad:
        raise BadMessage("bad_header", str(bad)) from None


def decode_checkpoint(
    key: bytes | None, value: bytes | None, headers: Headers | None
) -> QoeCheckpoint:
    """The checkpoint's group, partition and offset from its key and header; the JSON
    state is left to its one reader (the gateway's QoE aggregate)."""
    if not key:
        raise BadMessage("missing_key")
    if not value:
        raise BadMessage("empty")
    group, _, number = key.decode("utf-8", "replace").rpartition("/")
    try:
        partition = int(number)
        offset = int(decode_headers(headers)["offset"])
    except KeyError:
        raise BadMessage("missing_header", "offset") from None
    except ValueError as bad:
        raise BadMessage("bad_key" if not number.isdigit() else "bad_header", str(bad)) from None
    if not group or partition < 0 or offset < 0:
        raise BadMessage("bad_key", f"key={key!r} offset={offset}")
    return QoeCheckpoint(group, partition, offset, value)
