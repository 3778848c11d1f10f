"""The topic table: every topic the platform uses, its partitions, configs and record type.

These are firm (DESIGN.md §2): the Helm chart's KafkaTopics, the dashboards and every
service read them from here, and tests check that the chart agrees. A topic knows the
type of its records: `TopicSpec.decode` (contracts/decoders.py) turns a record's key,
value and headers into that type or raises `BadMessage`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Generic, TypeVar

from rts_common.contracts.decoders import (
    Decoder,
    decode_broadcast,
    decode_camera_status,
    decode_checkpoint,
    decode_dead_letter,
    decode_detection,
    decode_frame,
    decode_playback_event,
    decode_session_record,
)
from rts_common.contracts.messages import (
    FRAME_TOPIC_MAX_MESSAGE_BYTES,
    CameraStatus,
    DeadLetter,
    Detection,
    MiB,
    QoeCheckpoint,
    SessionRecord,
    VideoFrame,
)
from rts_common.events import PlaybackEventStruct

T = TypeVar("T")


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

PLAYBACK_EVENTS: TopicSpec[PlaybackEventStruct] = TopicSpec(
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
