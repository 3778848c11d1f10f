"""What each service may do on the Kafka cluster: the ACLs of its own user (DESIGN.md §9).

One list for every place that secures Kafka: the chart's KafkaUsers are generated from it
(`make chart-topics`) and the local broker's secured mode grants it, so the integration
test that proves "each service can do exactly its job" tests what the cluster enforces.
event-sim's idempotent producer needs no cluster-wide IdempotentWrite: since Kafka 3.0
(KIP-679), Write on the topic allows it, as it does the gateway's idempotent dead-letter
and sign-in producers. The gateway's direct-assignment readers carry
group ids `gateway-direct-*` (librdkafka wants one) but never join a group or commit.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from rts_common.contracts import (
    DASHBOARD_BROADCAST,
    DEAD_LETTERS,
    GATEWAY_SESSIONS,
    PLAYBACK_EVENTS,
    QOE_CHECKPOINTS,
    VIDEO_CAMERAS,
    VIDEO_DETECTIONS,
    VIDEO_FRAMES,
    TopicSpec,
)

ResourceType = Literal["topic", "group"]
PatternType = Literal["literal", "prefix"]
Operation = Literal["Read", "Write", "Describe"]
Service = Literal["capture", "event-sim", "gateway", "notifier", "autoscaler"]

SERVICES: tuple[Service, ...] = ("capture", "event-sim", "gateway", "notifier", "autoscaler")
# The notifier's consumer group (NOTIFIER_GROUP_ID).
NOTIFIER_GROUP = "notifier"
# librdkafka's group id for the gateway's readers that never join a group.
DIRECT_GROUP_PREFIX = "gateway-direct-"


@dataclass(frozen=True)
class Acl:
    """Allow `operations` on one resource (a literal name, or every name with a prefix)."""

    resource: ResourceType
    name: str
    pattern: PatternType
    operations: tuple[Operation, ...]


def _topic(spec: TopicSpec[Any], prefix: str, *operations: Operation) -> Acl:
    return Acl("topic", prefix + spec.name, "literal", operations)


def _group(name: str, *operations: Operation, pattern: PatternType = "literal") -> Acl:
    return Acl("group", name, pattern, operations)


def service_acls(service: Service, *, topic_prefix: str = "", group_id: str) -> list[Acl]:
    """The ACLs of `service`'s user; `group_id` is the gateway's events group
    (GATEWAY_GROUP_ID; its detections group is `<group_id>-detections`)."""
    p = topic_prefix
    if service == "capture":
        return [
            _topic(VIDEO_FRAMES, p, "Write", "Describe"),
            _topic(VIDEO_DETECTIONS, p, "Write", "Describe"),
            _topic(VIDEO_CAMERAS, p, "Write", "Describe"),
        ]
    if service == "event-sim":
        return [_topic(PLAYBACK_EVENTS, p, "Write", "Describe")]
    if service == "gateway":
        return [
            _topic(VIDEO_FRAMES, p, "Read", "Describe"),
            _topic(VIDEO_CAMERAS, p, "Read", "Describe"),
            _topic(PLAYBACK_EVENTS, p, "Read", "Describe"),
            _topic(VIDEO_DETECTIONS, p, "Read", "Describe"),
            _topic(DASHBOARD_BROADCAST, p, "Read", "Write", "Describe"),
            _topic(QOE_CHECKPOINTS, p, "Read", "Write", "Describe"),
            _topic(DEAD_LETTERS, p, "Write", "Describe"),
            _topic(GATEWAY_SESSIONS, p, "Read", "Write", "Describe"),
            _group(group_id, "Read", "Describe"),
            _group(f"{group_id}-detections", "Read", "Describe"),
            _group(DIRECT_GROUP_PREFIX, "Read", "Describe", pattern="prefix"),
        ]
    if service == "notifier":
        return [
            _topic(VIDEO_DETECTIONS, p, "Read", "Describe"),
            _topic(DEAD_LETTERS, p, "Write", "Describe"),
            _group(NOTIFIER_GROUP, "Read", "Describe"),
        ]
    # The autoscaler (KEDA) only reads the events group's lag: offsets, never records.
    return [
        _topic(PLAYBACK_EVENTS, p, "Describe"),
        _group(group_id, "Describe"),
    ]
