"""The camera's heartbeat on `video-cameras`: which camera this is, whether its source
delivers, how fast, at what size, and on which `video-frames` partition its frames go.

Gateways read the (compacted) topic to know which cameras exist without reading any
frame: they answer 404 for an unknown camera, list cameras for the dashboard's wall,
and read exactly the partition a viewer needs. The last status on shutdown says the
source is down, so the wall shows the camera as offline at once.
"""

from __future__ import annotations

import time

from rts_common.contracts import CameraStatus, SourceKind, ZoneShape
from rts_common.tasks import PeriodicTask

from rts_capture.kafka import Publisher
from rts_capture.reader import SourceHealth
from rts_capture.zones import Zone


class StatusAnnouncer:
    def __init__(
        self,
        publisher: Publisher,
        health: SourceHealth,
        camera: str,
        source: SourceKind,
        interval: float,
        zones: tuple[Zone, ...] = (),
    ) -> None:
        self._publisher = publisher
        self._health = health
        self._camera = camera
        self._source = source
        self._interval = interval
        self._zones = [ZoneShape(name=z.name, points=list(z.points)) for z in zones]
        # The first status goes out soon after start, so gateways find the camera at once.
        self.task = PeriodicTask(
            "camera-status", interval, self._announce, first_delay=min(0.5, interval)
        )
        self._frames = 0
        self._at = time.monotonic()

    def start(self) -> StatusAnnouncer:
        self.task.start()
        return self

    def stop(self) -> None:
        """Stop announcing and publish a last status saying the source is down."""
        self.task.stop()
        self._publisher.send_status(self.status(source_up=False))

    def status(self, source_up: bool | None = None) -> CameraStatus:
        now = time.monotonic()
        sent = self._publisher.frames_sent
        elapsed = now - self._at
        fps = (sent - self._frames) / elapsed if elapsed > 0 else 0.0
        self._frames, self._at = sent, now
        size = self._publisher.last_size
        return CameraStatus(
            camera=self._camera,
            ts=time.time_ns(),
            source=self._source,
            source_up=self._health.up if source_up is None else source_up,
            fps=round(fps, 3),
            width=size[0] if size else None,
            height=size[1] if size else None,
            partition=self._publisher.frames_partition,
            frames=sent,
            last_frame_ts=self._publisher.last_frame_ts,
            zones=self._zones,
        )

    def _announce(self) -> None:
        self._publisher.send_status(self.status())
