"""Which cameras exist, from the capture processes' heartbeats on `video-cameras`.

Every pod reads the whole compacted topic, so every pod knows every camera, the
partition its frames travel on, and whether its source is up, without reading frames.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from confluent_kafka import Consumer
from rts_common.contracts import CameraStatus

from rts_gateway.bridge import Batch, from_beginning
from rts_gateway.metrics import GatewayMetrics


@dataclass
class CameraView:
    """What /api/cameras shows: the capture's own status and what this pod saw."""

    status: CameraStatus
    received_at: float  # time.time() when the status arrived

    def as_json(self, now: float) -> dict[str, Any]:
        s = self.status
        last = s.last_frame_ts / 1e9 if s.last_frame_ts else None
        return {
            "camera": s.camera,
            "source": s.source,
            "source_up": s.source_up,
            "fps": round(s.fps, 2),
            "width": s.width,
            "height": s.height,
            "partition": s.partition,
            "frames": s.frames,
            "last_frame_age_seconds": round(now - last, 3) if last else None,
            "status_age_seconds": round(now - s.ts / 1e9, 3),
            "zones": [z.model_dump() for z in s.zones],
        }


class CameraDirectory:
    """App-context state fed by a ConsumerLoop over the `video-cameras` topic."""

    def __init__(self, topic: str, metrics: GatewayMetrics, max_age: float) -> None:
        self.topic = topic
        self._metrics = metrics
        self._max_age = max_age
        self._cameras: dict[str, CameraView] = {}
        self._end_offsets: dict[int, int] | None = None
        self._positions: dict[int, int] = {}
        self._listeners: list[Callable[[CameraStatus], None]] = []

    # -- reading

    def get(self, camera: str) -> CameraStatus | None:
        view = self._cameras.get(camera)
        return view.status if view else None

    def recent(self, now: float | None = None) -> list[CameraView]:
        now = time.time() if now is None else now
        return sorted(
            # list(): a copy taken at once, while the consumer may be adding a camera.
            (v for v in list(self._cameras.values()) if now - v.status.ts / 1e9 <= self._max_age),
            key=lambda v: v.status.camera,
        )

    def listing(self) -> list[dict[str, Any]]:
        """The recent cameras as the dashboard and /api/cameras show them."""
        now = time.time()
        return [view.as_json(now) for view in self.recent(now)]

    def first(self) -> str | None:
        cameras = self.recent()
        return cameras[0].status.camera if cameras else None

    @property
    def caught_up(self) -> bool:
        """The directory has read everything the topic held when the pod started."""
        if self._end_offsets is None:
            return False
        return all(self._positions.get(p, -1) >= end - 1 for p, end in self._end_offsets.items())

    def on_change(self, listener: Callable[[CameraStatus], None]) -> None:
        self._listeners.append(listener)

    # -- fed from Kafka

    def assign_all(self, consumer: Consumer) -> dict[int, int]:
        """Native-thread command: read every partition from the beginning."""
        return from_beginning(self.topic)(consumer)

    def assigned(self, ends: dict[int, int]) -> None:
        self._end_offsets = ends
        self._metrics.partitions_assigned.labels(topic=self.topic).set(len(ends))

    def on_batch(self, batch: Batch[CameraStatus | None]) -> None:
        for partition, end in batch.ends.items():
            self._positions[partition] = end - 1
        for record in batch.records:
            status = record.value
            if status is None:  # a tombstone: the camera was removed
                self._cameras.pop((record.key or b"").decode("utf-8", "replace"), None)
                continue
            self._cameras[status.camera] = CameraView(status, time.time())
            for listener in self._listeners:
                listener(status)
