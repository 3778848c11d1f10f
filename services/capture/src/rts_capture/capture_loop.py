"""The capture loop and the start-up checks around it.

Newest frame from the reader → scaled JPEG → Kafka, then to the detection thread; the
loop also runs the source watchdog between frames.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Any

from rts_common.contracts import FrameMeta
from rts_common.tasks import Heartbeat

from rts_capture.detect.worker import DetectionWorker
from rts_capture.encode import EncodeError, JpegEncoder
from rts_capture.kafka import Publisher
from rts_capture.metrics import CaptureMetrics
from rts_capture.reader import Captured, Feed, Opened, OpenSource, SourceHealth
from rts_capture.settings import SNAPSHOT_FPS, TEST_PATTERN_FPS, CaptureSettings
from rts_capture.sources import Image, Source, SourceError
from rts_capture.sources.network import open_snapshot
from rts_capture.sources.opencv import open_camera, open_file, open_url
from rts_capture.sources.pattern import TestPattern, load_face

log = logging.getLogger(__name__)

# The face takes half the pattern's height: big enough for the cascade at 640 px wide.
FACE_HEIGHT = 0.5


def source_opener(settings: CaptureSettings) -> OpenSource:
    """A function that opens the configured source (again, after a failure)."""
    spec = settings.source_spec
    if spec.kind == "test":
        face: Image | None = None
        if settings.test_face:
            face = load_face(Path(settings.test_face), round(settings.test_height * FACE_HEIGHT))
        width, height = settings.test_width, settings.test_height
        fps = settings.fps or TEST_PATTERN_FPS
        camera = settings.camera
        return lambda: TestPattern(width, height, fps, label=camera, face=face)
    if spec.kind == "camera":
        return lambda: open_camera(spec.index, settings.stall_timeout)
    if spec.kind == "file":
        return lambda: open_file(spec.path)
    if settings.snapshot:
        fps = settings.fps or SNAPSHOT_FPS
        return lambda: open_snapshot(spec.target, fps, settings.stall_timeout)
    transport = settings.rtsp_transport
    return lambda: open_url(spec.target, settings.open_timeout, settings.stall_timeout, transport)


def probe(settings: CaptureSettings, open_source: OpenSource) -> Opened | None:
    """Open the source and read one frame, so a wrong --source fails at start, clearly.

    Streams are the exception: a network camera may come up after capture does, so a
    URL is opened by the reader, which retries with backoff.
    """
    spec = settings.source_spec
    if spec.kind == "url":
        return None
    result: list[Opened | BaseException] = []

    def attempt() -> None:
        try:
            source = open_source()
        except BaseException as exc:  # noqa: BLE001 - handed to the caller
            result.append(exc)
            return
        image = source.read()
        if image is None:
            source.close()
            result.append(SourceError(_no_frame(settings, source)))
        else:
            result.append(Opened(source, image, time.time_ns()))

    # A camera that opens and then never delivers would hang start-up in read().
    thread = threading.Thread(target=attempt, name="source-probe", daemon=True)
    thread.start()
    thread.join(settings.open_timeout)
    if not result:
        raise SourceError(
            f"{spec.kind} {spec.describe()} opened but delivered no frame "
            f"within {settings.open_timeout:g}s"
        )
    if isinstance(result[0], BaseException):
        raise result[0]
    return result[0]


def _no_frame(settings: CaptureSettings, source: Source) -> str:
    spec = settings.source_spec
    if spec.kind == "file":
        return f"video file {spec.describe()} opened but no frame could be decoded (corrupt?)"
    return f"{source.kind} {spec.describe()} opened but delivered no frame"


class CaptureLoop:
    def __init__(
        self,
        feed: Feed,
        encoder: JpegEncoder,
        publisher: Publisher,
        detection: DetectionWorker,
        *,
        health: SourceHealth,
        metrics: CaptureMetrics,
        camera: str,
    ) -> None:
        self.feed = feed
        self.encoder = encoder
        self.publisher = publisher
        self.detection = detection
        self.health = health
        self.metrics = metrics
        self.camera = camera
        self.ended = False
        # Rounds come every 100 ms at the latest (the wait for a frame): a long silence is
        # an encode or a send that hangs.
        self.heartbeat = Heartbeat("capture-loop", max_silence=30.0)

    def run(self, stop: threading.Event) -> None:
        """Until `stop` is set or a file source ends."""
        while not stop.is_set():
            self.heartbeat.beat()
            item = self.feed.next(timeout=0.1)
            if item is not None:
                self.handle(item)
            elif self.feed.ended:
                self.ended = True
                return

    def handle(self, item: Captured) -> None:
        started = time.perf_counter()
        try:
            encoded = self.encoder.encode(item.image)
        except EncodeError as exc:
            self.metrics.dropped(exc.reason).inc()
            log.warning("frame not encoded", extra={"seq": item.seq, "reason": str(exc)})
            return
        self.metrics.encode_seconds.observe(time.perf_counter() - started)
        meta = FrameMeta(self.camera, item.seq, item.ts_ns, encoded.width, encoded.height)
        if self.publisher.send_frame(meta, encoded.jpeg):
            self.metrics.frame_width.set(encoded.width)
            self.metrics.frame_height.set(encoded.height)
        # Detections go on even when Kafka drops frames: they are small and still news.
        self.detection.offer(encoded.image, meta)

    def readiness(self) -> tuple[bool, dict[str, Any]]:
        kafka_ok, details = self.publisher.readiness()
        source = "up" if self.health.up else self.health.reason
        return self.health.up and kafka_ok, {"camera": self.camera, "source": source, **details}

    def shutdown(self, flush_timeout: float) -> int:
        """Stop reading and detecting, then flush; returns the records left undelivered."""
        self.heartbeat.done()
        self.feed.close()
        self.detection.stop()
        left = self.publisher.flush(flush_timeout)
        reports = self.publisher.reports
        log.info(
            "capture stopped",
            extra={
                "camera": self.camera,
                "delivered": reports.delivered,
                "failed": reports.failed,
                "undelivered": left,
                "ended": self.ended,
            },
        )
        return left
