"""Builders for gateway unit tests: real confluent-kafka Message objects, no broker."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition
from rts_common.contracts import CameraStatus, FrameMeta, TopicSpec
from rts_gateway.bridge import BadRecords, Batch, Future, Topic, decode_batch
from rts_gateway.metrics import GatewayMetrics

T = TypeVar("T")

JPEG = b"\xff\xd8" + b"\x10" * 500 + b"\xff\xd9"


def frame_message(
    camera: str,
    seq: int,
    *,
    partition: int = 0,
    offset: int | None = None,
    ts_ns: int | None = None,
    value: bytes = JPEG,
    topic: str = "video-frames",
    crc: bool = True,
) -> Message:
    meta = FrameMeta(camera, seq, ts_ns or time.time_ns(), 64, 48)
    return Message(
        topic=topic,
        partition=partition,
        offset=seq if offset is None else offset,
        key=camera.encode(),
        value=value,
        headers=meta.headers(value if crc else None),
    )


def status_message(camera: str, partition: int = 0, *, offset: int = 0) -> Message:
    now = time.time_ns()
    status = CameraStatus(
        camera=camera,
        ts=now,
        source="test",
        source_up=True,
        fps=15.0,
        width=64,
        height=48,
        partition=partition,
        last_frame_ts=now,
    )
    return Message(
        topic="video-cameras",
        partition=0,
        offset=offset,
        key=camera.encode(),
        value=status.model_dump_json().encode(),
    )


def batch_of(spec: TopicSpec[T], messages: list[Message], metrics: GatewayMetrics) -> Batch[T]:
    """What a consumer loop of `spec` would deliver for these messages."""
    return decode_batch(Topic(spec, spec.name), messages, BadRecords(metrics))


class RecordingLoop:
    """Stands in for ConsumerLoop in unit tests: keeps the commands until a test runs them
    against a FakeConsumer (`run_commands`), resolving their futures as the loop would."""

    def __init__(self) -> None:
        self.commands: list[tuple[Callable[[Consumer], Any], Future[Any]]] = []

    def submit(self, command: Callable[[Consumer], Any]) -> Future[Any]:
        future: Future[Any] = Future()
        self.commands.append((command, future))
        return future

    def run_commands(self, consumer: FakeConsumer) -> None:
        commands, self.commands = self.commands, []
        for command, future in commands:
            try:
                future.resolve(command(consumer), None)  # type: ignore[arg-type]
            except Exception as exc:
                future.resolve(None, exc)


class FakeConsumer:
    """Records the assignment calls a command makes; `broken` makes the broker calls fail."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, list[tuple[int, int]]]] = []
        self.assigned: set[int] = set()
        self.broken = False

    def offsets_for_times(self, partitions: list[Any], timeout: float) -> list[Any]:
        if self.broken:
            raise KafkaException(KafkaError(KafkaError._TIMED_OUT))
        return partitions

    def assignment(self) -> list[Any]:
        return [TopicPartition("video-frames", p) for p in sorted(self.assigned)]

    def incremental_assign(self, partitions: list[Any]) -> None:
        self.calls.append(("assign", [(p.partition, p.offset) for p in partitions]))
        self.assigned |= {p.partition for p in partitions}

    def seek(self, partition: Any) -> None:
        self.calls.append(("seek", [(partition.partition, partition.offset)]))

    def incremental_unassign(self, partitions: list[Any]) -> None:
        self.calls.append(("unassign", [(p.partition, p.offset) for p in partitions]))
        self.assigned -= {p.partition for p in partitions}
