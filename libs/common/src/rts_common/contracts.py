"""The wire contracts between services: topics, keys, headers and message shapes.

These are firm (DESIGN.md §2): the Helm chart's KafkaTopics, the dashboards and every
service read them from here, and tests check that the chart agrees. A topic knows the
type of its records: `TopicSpec.decode` turns a record's key, value and headers into
that type or raises `BadMessage`, so every consumer refuses bad records the same way.
"""

from __future__ import annotations

import json
import re
import zlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Annotated, Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from rts_common.events import PlaybackEvent

MiB = 1024 * 1024

T = TypeVar("T")

HeaderValue = bytes | str | None
# confluent-kafka hands headers over as a list of pairs; producers may pass a dict.
Headers = Sequence[tuple[str, HeaderValue]] | Mapping[str, HeaderValue]
# key, value, headers -> the topic's record type, or BadMessage
Decoder = Callable[[bytes | None, bytes | None, Headers | None], T]


class BadMessage(ValueError):
    """A record that breaks its topic's contract. `reason` is a bounded metric label."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class TopicSpec(Generic[T]):
    """A topic as the platform expects it: partitions on a cluster and locally, its configs,
    and how to decode its records."""

    name: str
    partitions: int
    local_partitions: int
    key: str
    value: str
    decode: Decoder[T]
    config: Mapping[str, str] = field(default_factory=dict)


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


def decode_frame(key: bytes | None, value: bytes | None, headers: Headers | None) -> VideoFrame:
    meta, jpeg = FrameMeta.from_record(key, headers), check_jpeg(value)
    crc = decode_headers(headers).get("crc")
    if crc is not None and (not crc.isdigit() or int(crc) != zlib.crc32(jpeg)):
        raise BadMessage("checksum", f"crc {crc!r} does not match the JPEG")
    return VideoFrame(meta, jpeg)


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
# JSON records


M = TypeVar("M", bound=BaseModel)

# Far above any real record of these topics: a bigger one is junk, refused unparsed.
JSON_RECORD_LIMIT = 64 * 1024


def _model_decoder(model: type[M], limit: int = JSON_RECORD_LIMIT) -> Decoder[M]:
    def decode(_key: bytes | None, value: bytes | None, _headers: Headers | None) -> M:
        if not value:
            raise BadMessage("empty")
        if len(value) > limit:
            raise BadMessage("too_large", f"{len(value)} > {limit} bytes")
        try:
            return model.model_validate_json(value)
        except ValidationError as exc:
            # Broken JSON (bad UTF-8, nesting past the parser's limit) or a wrong shape.
            reason = "not_json" if exc.errors()[0]["type"] == "json_invalid" else "invalid"
            raise BadMessage(reason, str(exc).splitlines()[1].strip()[:300]) from None

    return decode


decode_detection: Decoder[Detection] = _model_decoder(Detection)
decode_playback_event: Decoder[PlaybackEvent] = _model_decoder(PlaybackEvent)
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


# ---------------------------------------------------------------------------------------
# Topics

VIDEO_FRAMES: TopicSpec[VideoFrame] = TopicSpec(
    name="video-frames",
    partitions=6,
    local_partitions=3,
    key="camera id",
    value="one JPEG image; headers seq, ts (capture time, ns since epoch), w, h",
    decode=decode_frame,
    config=MappingProxyType(
        {
            # Short retention: live video is only worth keeping for replay.
            "retention.ms": str(10 * 60 * 1000),
            # Small segments, so retention actually deletes within minutes.
            "segment.ms": str(60 * 1000),
            "segment.bytes": str(64 * MiB),
            "max.message.bytes": str(FRAME_TOPIC_MAX_MESSAGE_BYTES),
            # JPEG is already compressed; keep whatever (none) the producer sends.
            "compression.type": "producer",
            # Replay looks frames up by capture time, which the producer sets.
            "message.timestamp.type": "CreateTime",
        }
    ),
)

VIDEO_DETECTIONS: TopicSpec[Detection] = TopicSpec(
    name="video-detections",
    partitions=6,
    local_partitions=3,
    key="camera id",
    value='JSON {camera, seq, ts, kind: "motion"|"face"|"person"|"offline"|"online", '
    "boxes: [[x,y,w,h]...], score, width, height, zones}",
    decode=decode_detection,
    config=MappingProxyType(
        {
            "retention.ms": str(24 * 60 * 60 * 1000),
            "segment.bytes": str(64 * MiB),
        }
    ),
)

PLAYBACK_EVENTS: TopicSpec[PlaybackEvent] = TopicSpec(
    name="playback-events",
    partitions=6,
    local_partitions=3,
    key="session id",
    value="JSON playback event (rts_common.events.PlaybackEvent)",
    decode=decode_playback_event,
    config=MappingProxyType(
        {
            "retention.ms": str(24 * 60 * 60 * 1000),
            "segment.bytes": str(128 * MiB),
            # Cap what a long benchmark run can leave on a developer's disk.
            "retention.bytes": str(1024 * MiB),
        }
    ),
)

# A gateway must know which cameras exist (to answer 404 for an unknown one without
# creating Kafka reads for it, to list cameras for the wall) and which partition carries
# each camera's frames, without reading every frame. Each capture publishes its status
# here every second; compaction keeps the newest per camera, so a gateway reads the whole
# (tiny) topic at start.
VIDEO_CAMERAS: TopicSpec[CameraStatus | None] = TopicSpec(
    name="video-cameras",
    partitions=1,
    local_partitions=1,
    key="camera id",
    value="JSON CameraStatus {camera, ts, source, source_up, fps, width, height, partition, ...}",
    decode=decode_camera_status,
    config=MappingProxyType(
        {
            "cleanup.policy": "compact",
            "min.cleanable.dirty.ratio": "0.1",
            "segment.ms": str(60 * 60 * 1000),
            "delete.retention.ms": str(60 * 60 * 1000),
        }
    ),
)

# The Socket.IO client manager's pub/sub channel. Every gateway replica publishes what its
# partitions produced (sampled events, QoE aggregates, detections) and every replica reads
# all of it from the end, so each browser gets everything whichever replica it is
# connected to. One partition keeps one order.
DASHBOARD_BROADCAST: TopicSpec[list[dict[str, Any]]] = TopicSpec(
    name="dashboard-broadcast",
    partitions=1,
    local_partitions=1,
    key="none",
    value="JSON list of python-socketio pub/sub messages (emit, disconnect, rooms...)",
    decode=decode_broadcast,
    config=MappingProxyType(
        {
            # Only live readers: nobody replays the dashboard's past.
            "retention.ms": str(60 * 60 * 1000),
            "segment.ms": str(10 * 60 * 1000),
        }
    ),
)

# The dashboard's per-partition state of `playback-events` (QoE aggregates, open sessions),
# written by the gateway replica that owns the partition every few seconds and when it
# gives the partition up, so the next owner starts from it instead of from nothing. The
# state of events partition p lives in partition p, keyed by consumer group and p: the
# newest record there is, as a rule, the newest state of the one group that reads the
# events, found without a scan. Compaction keeps one per key.
QOE_CHECKPOINT_MAX_MESSAGE_BYTES = 16 * MiB


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


QOE_CHECKPOINTS: TopicSpec[QoeCheckpoint] = TopicSpec(
    name="qoe-checkpoints",
    # One per playback-events partition: the state of partition p is in partition p.
    partitions=PLAYBACK_EVENTS.partitions,
    local_partitions=PLAYBACK_EVENTS.local_partitions,
    key="consumer group/playback-events partition",
    value="JSON QoE state of that partition (counts, open sessions); header offset",
    decode=decode_checkpoint,
    config=MappingProxyType(
        {
            "cleanup.policy": "compact",
            "min.cleanable.dirty.ratio": "0.1",
            # Segments roll (and become compactable) often: a partition's state is
            # rewritten every few seconds, and only the newest one matters.
            "segment.ms": str(10 * 60 * 1000),
            "segment.bytes": str(64 * MiB),
            # Every open session of a partition: about 100 bytes each before compression.
            "max.message.bytes": str(QOE_CHECKPOINT_MAX_MESSAGE_BYTES),
        }
    ),
)

# Records of playback-events and video-detections that broke their contract: kept (a week,
# bounded in size) for someone to look at, instead of only counted.
DEAD_LETTERS: TopicSpec[DeadLetter] = TopicSpec(
    name="dead-letters",
    partitions=3,
    local_partitions=1,
    key="the refused record's key",
    value="the refused record's value, as it came; headers dlq.reason, dlq.detail, "
    "dlq.topic, dlq.partition, dlq.offset",
    decode=decode_dead_letter,
    config=MappingProxyType(
        {
            "retention.ms": str(7 * 24 * 60 * 60 * 1000),
            "retention.bytes": str(256 * MiB),
            "segment.bytes": str(64 * MiB),
        }
    ),
)

# Sign-in state every replica shares (SessionRecord): a session revoked on one replica
# ends on all of them, and a login link traded on one is refused by the others and after
# a restart. Every replica reads the whole topic at start. Compaction keeps one record
# per key; retention drops them once no session or link they name can still be valid
# (sessions last at most 30 days).
GATEWAY_SESSIONS: TopicSpec[SessionRecord | None] = TopicSpec(
    name="gateway-sessions",
    partitions=1,
    local_partitions=1,
    key="<kind>:<session id | subject | login link nonce>",
    value="JSON SessionRecord {kind, id, ts, until, claim}",
    decode=decode_session_record,
    config=MappingProxyType(
        {
            "cleanup.policy": "compact,delete",
            "retention.ms": str(31 * 24 * 60 * 60 * 1000),
            "min.cleanable.dirty.ratio": "0.1",
            "segment.ms": str(24 * 60 * 60 * 1000),
            "delete.retention.ms": str(24 * 60 * 60 * 1000),
        }
    ),
)

TOPICS: tuple[TopicSpec[Any], ...] = (
    VIDEO_FRAMES,
    VIDEO_DETECTIONS,
    PLAYBACK_EVENTS,
    VIDEO_CAMERAS,
    DASHBOARD_BROADCAST,
    QOE_CHECKPOINTS,
    DEAD_LETTERS,
    GATEWAY_SESSIONS,
)


def topic(name: str) -> TopicSpec[Any]:
    for spec in TOPICS:
        if spec.name == name:
            return spec
    raise KeyError(name)
