"""The messages services send each other: their shapes, keys and headers.

The records of each topic (contracts/topics.py says which topic carries which) and the
pieces they are made of: camera ids (a record key, a URL segment, a metric label),
headers, the frame's metadata and JPEG check. `BadMessage` is how a record that breaks
its contract is refused, with a reason that is a bounded metric label.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

MiB = 1024 * 1024

HeaderValue = bytes | str | None
# confluent-kafka hands headers over as a list of pairs; producers may pass a dict.
Headers = Sequence[tuple[str, HeaderValue]] | Mapping[str, HeaderValue]


class BadMessage(ValueError):
    """A record that breaks its topic's contract. `reason` is a bounded metric label."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


# ---------------------------------------------------------------------------------------
# Camera ids

# What a camera id may be: it names a URL path segment (/stream/<id>), an HTTP header value
# (X-Camera), a metric label and a Kafka key, so nothing that could break out of any of them.
CAMERA_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
CAMERA_ID = re.compile(CAMERA_ID_PATTERN)


def camera_id(key: bytes | str | None) -> str:
    """A record key as a camera id, or BadMessage when it is not one."""
    if not key:
        raise BadMessage("missing_key")
    try:
        camera = key.decode("ascii") if isinstance(key, bytes) else key
    except UnicodeDecodeError:
        raise BadMessage("bad_camera_id", repr(key[:80])) from None
    if not CAMERA_ID.fullmatch(camera):
        raise BadMessage("bad_camera_id", repr(camera[:80]))
    return camera


# ---------------------------------------------------------------------------------------
# Frames

# A 1080p JPEG at high quality of a busy scene is a few hundred KiB; 4 MiB leaves room
# for a 4K frame while keeping one record well below what a broker holds in memory.
FRAME_TOPIC_MAX_MESSAGE_BYTES = 4 * MiB
# Room for the record's key, headers and batch overhead below the topic limit.
FRAME_PAYLOAD_LIMIT = FRAME_TOPIC_MAX_MESSAGE_BYTES - 64 * 1024


def encode_headers(values: Mapping[str, int | str]) -> list[tuple[str, bytes]]:
    """Header values are ASCII strings; integers are written in decimal."""
    return [(name, str(value).encode("ascii")) for name, value in values.items()]


def decode_headers(headers: Headers | None) -> dict[str, str]:
    out: dict[str, str] = {}
    pairs: Iterable[tuple[str, HeaderValue]] = (
        headers.items() if isinstance(headers, Mapping) else headers or ()
    )
    for name, raw in pairs:
        if raw is None:
            continue
        out[name] = raw.decode("ascii", "replace") if isinstance(raw, bytes) else raw
    return out


@dataclass(frozen=True, slots=True)
class FrameMeta:
    """What travels with a frame besides its JPEG bytes."""

    camera: str
    seq: int
    ts_ns: int
    width: int
    height: int

    def headers(self, jpeg: bytes | None = None) -> list[tuple[str, bytes]]:
        """The record's headers; given the JPEG, its CRC-32 too (`crc`), so a frame damaged
        on its way is refused instead of shown (a flipped bit keeps JPEG's markers)."""
        values = {"seq": self.seq, "ts": self.ts_ns, "w": self.width, "h": self.height}
        if jpeg is not None:
            values["crc"] = zlib.crc32(jpeg)
        return encode_headers(values)

    @classmethod
    def from_record(cls, key: bytes | str | None, headers: Headers | None) -> FrameMeta:
        """Parse a `video-frames` record's key and headers, or raise BadMessage."""
        camera = camera_id(key)
        values = decode_headers(headers)
        try:
            seq, ts_ns = int(values["seq"]), int(values["ts"])
            width, height = int(values["w"]), int(values["h"])
        except KeyError as missing:
            raise BadMessage("missing_header", str(missing)) from None
        except ValueError as bad:
            raise BadMessage("bad_header", str(bad)) from None
        if width <= 0 or height <= 0 or seq < 0 or ts_ns <= 0:
            raise BadMessage("bad_header", f"seq={seq} ts={ts_ns} w={width} h={height}")
        return cls(camera, seq, ts_ns, width, height)


JPEG_SOI = b"\xff\xd8"
JPEG_EOI = b"\xff\xd9"


def check_jpeg(payload: bytes | None, limit: int = FRAME_PAYLOAD_LIMIT) -> bytes:
    """Cheap structural check of a JPEG (markers and size, no decode), or raise BadMessage.

    Decoding every frame would cost the gateway more CPU than everything else it does;
    the start/end markers catch truncation and non-JPEG payloads.
    """
    if not payload:
        raise BadMessage("empty")
    if len(payload) > limit:
        raise BadMessage("too_large", f"{len(payload)} > {limit} bytes")
    if not payload.startswith(JPEG_SOI):
        raise BadMessage("not_jpeg")
    if not payload.rstrip(b"\x00").endswith(JPEG_EOI):
        raise BadMessage("truncated")
    return payload


@dataclass(frozen=True, slots=True)
class VideoFrame:
    """A `video-frames` record: the frame's metadata and its JPEG bytes."""

    meta: FrameMeta
    jpeg: bytes


# ---------------------------------------------------------------------------------------
# Detections

# What capture finds (motion, face, person), and its source going away and coming back
# (offline, online: no boxes), which the timeline draws as a gap and the notifier pushes.
DetectionKind = Literal["motion", "face", "person", "offline", "online"]
DETECTION_KINDS: tuple[DetectionKind, ...] = ("motion", "face", "person", "offline", "online")
SOURCE_KINDS: tuple[DetectionKind, ...] = ("offline", "online")
# A zone's name: a label on detections, a key of the notifier's rules, an MQTT topic level.
ZONE_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,31}$"
ZONE_NAME = re.compile(ZONE_NAME_PATTERN)
ZoneName = Annotated[str, Field(pattern=ZONE_NAME_PATTERN)]


class Detection(BaseModel):
    """One detector's result for one frame, published to `video-detections`; or the
    camera's source going offline (ts: its last frame) or online (ts: its first frame)."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    camera: str = Field(pattern=CAMERA_ID_PATTERN)
    seq: int = Field(ge=0)
    ts: int = Field(gt=0, description="capture time of the frame, ns since epoch")
    kind: DetectionKind
    boxes: list[tuple[int, int, int, int]] = Field(description="[x, y, w, h] in frame pixels")
    score: float = Field(ge=0)
    width: int | None = Field(default=None, gt=0, description="frame width the boxes refer to")
    height: int | None = Field(default=None, gt=0, description="frame height the boxes refer to")
    zones: list[ZoneName] = Field(
        default_factory=list,
        max_length=32,
        description="the camera's zones a box falls in (its bottom centre inside the zone)",
    )


# ---------------------------------------------------------------------------------------
# Camera status

SourceKind = Literal["test", "camera", "file", "url"]


class ZoneShape(BaseModel):
    """A camera's zone as its status announces it: points are fractions (0-1) of the
    frame's width and height, so viewers draw it over any size of the picture."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    name: ZoneName
    points: list[tuple[float, float]] = Field(min_length=3, max_length=64)


class CameraStatus(BaseModel):
    """A capture process's heartbeat on `video-cameras`, keyed by camera id."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    camera: str = Field(pattern=CAMERA_ID_PATTERN)
    ts: int = Field(gt=0, description="when this status was published, ns since epoch")
    source: SourceKind
    source_up: bool = Field(description="the source delivers frames")
    fps: float = Field(ge=0, description="frames published per second, measured")
    width: int | None = Field(default=None, gt=0)
    height: int | None = Field(default=None, gt=0)
    partition: int | None = Field(
        default=None, ge=0, description="video-frames partition that carries this camera"
    )
    frames: int = Field(default=0, ge=0, description="frames published since the process started")
    last_frame_ts: int | None = Field(default=None, gt=0, description="capture time, ns")
    zones: list[ZoneShape] = Field(
        default_factory=list, max_length=32, description="the camera's zones, for viewers to draw"
    )


# ---------------------------------------------------------------------------------------
# Sign-in: revoked sessions and used login links, shared by every gateway replica

SessionRecordKind = Literal["session_revoked", "subject_revoked", "link_used"]


class SessionRecord(BaseModel):
    """A fact about sign-in every gateway replica must know, keyed `<kind>:<id>`.

    - `session_revoked`: the session `id` ended (logout, or an operator revoked it);
    - `subject_revoked`: every session of subject `id` opened before `ts` ended;
    - `link_used`: the login link with nonce `id` was traded; `claim` names the trade, and
      the first record of a link in the partition wins if two replicas trade it at once.
    `until` is when the fact stops mattering (the session's or the link's expiry).
    """

    model_config = ConfigDict(frozen=True, extra="ignore")

    kind: SessionRecordKind
    id: str = Field(min_length=1, max_length=256)
    ts: int = Field(gt=0, description="when it happened, ns since epoch")
    until: int = Field(gt=0, description="when it stops mattering, ns since epoch")
    claim: str = Field(default="", max_length=64)

    @property
    def key(self) -> str:
        return f"{self.kind}:{self.id}"


# ---------------------------------------------------------------------------------------
# Dead letters


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A record a consumer refused, kept as it came with why and where it was read."""

    reason: str
    detail: str
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None

    def headers(self) -> list[tuple[str, HeaderValue]]:
        return [
            ("dlq.reason", self.reason.encode("ascii", "replace")),
            ("dlq.detail", self.detail[:500].encode("utf-8", "replace")),
            ("dlq.topic", self.topic.encode("utf-8", "replace")),
            ("dlq.partition", str(self.partition).encode()),
            ("dlq.offset", str(self.offset).encode()),
        ]


# ---------------------------------------------------------------------------------------
# QoE checkpoints


@dataclass(frozen=True, slots=True)
class QoeCheckpoint:
    """A `qoe-checkpoints` record: the state, for consumer group `group`, of one events
    partition after every record below `offset`. The header `offset` says it without
    parsing the (large) JSON value."""

    group: str
    partition: int
    offset: int
    state: bytes


def checkpoint_key(group: str, partition: int) -> bytes:
    return f"{group}/{partition}".encode()


def checkpoint_headers(offset: int, owner: str) -> list[tuple[str, str | bytes | None]]:
    return [*encode_headers({"offset": offset, "owner": owner})]
