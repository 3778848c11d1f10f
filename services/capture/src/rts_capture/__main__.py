"""`capture`: one camera, file, stream or test pattern into Kafka (see `capture --help`)."""

from __future__ import annotations

import logging
import sys

from rts_common.lifecycle import shutdown_event
from rts_common.logs import configure_logging
from rts_common.ops import OpsServer

from rts_capture.app import Capture, probe, source_opener
from rts_capture.detect import DetectorError
from rts_capture.detect.worker import DetectionWorker, build_detectors
from rts_capture.encode import JpegEncoder
from rts_capture.kafka import Publisher
from rts_capture.metrics import CaptureMetrics
from rts_capture.reader import (
    Backoff,
    Captured,
    Feed,
    Mailbox,
    Opened,
    SourceHealth,
    SourceReader,
    sequence,
)
from rts_capture.settings import CaptureSettings
from rts_capture.sources import SourceError
from rts_capture.sources.opencv import quiet_opencv

log = logging.getLogger("capture")


def main(argv: list[str] | None = None) -> int:
    settings = CaptureSettings.load(argv)
    configure_logging("capture", settings.log_level, settings.log_format)
    quiet_opencv(verbose=settings.log_level == "debug")
    camera, spec = settings.camera, settings.source_spec
    log.info("starting", extra={"camera": camera, "source": spec.describe(), "kind": spec.kind})

    try:
        detectors = build_detectors(settings)
        open_source = source_opener(settings)
        first = probe(settings, open_source)
    except (SourceError, DetectorError) as exc:
        log.error("cannot capture: %s", exc, extra={"camera": camera})
        return 1
    stop = shutdown_event()

    metrics = CaptureMetrics(camera)
    metrics.source_info.labels(camera=camera).info({"kind": spec.kind})
    try:
        # Bound before anything starts, so a taken port fails fast; it serves once started.
        ops = OpsServer(
            metrics.registry,
            lambda: capture.readiness(),  # noqa: PLW0108 - `capture` does not exist yet
            settings.ops_host,
            settings.ops_port,
        )
    except OSError as exc:
        log.error("cannot serve /metrics on port %s: %s", settings.ops_port, exc)
        return 1
    health = SourceHealth(metrics, camera, spec.describe())
    frames: Mailbox[Captured] = Mailbox()
    seq, backoff = sequence(), Backoff(0.5, settings.reconnect_max)

    def reader(opened: Opened | None, delay: float) -> SourceReader:
        return SourceReader(
            open_source, frames, health, metrics, seq, backoff=backoff,
            fps_cap=settings.fps, loop=settings.loop, first=opened, delay=delay,
        )  # fmt: skip

    publisher = Publisher.create(settings, metrics).start()
    detection = DetectionWorker(detectors, publisher.send_detection, metrics, camera)
    encoder = JpegEncoder(
        settings.jpeg_quality, settings.max_width, on_reduced=lambda how: metrics.reduced(how).inc()
    )
    feed = Feed(
        reader, frames, health, backoff,
        stall_timeout=settings.stall_timeout, open_timeout=settings.open_timeout, first=first,
    )  # fmt: skip
    capture = Capture(
        feed, encoder, publisher, detection.start(), health=health, metrics=metrics, camera=camera
    )
    ops.start()
    try:
        capture.run(stop)
    finally:
        capture.shutdown(settings.shutdown_timeout)
        ops.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
