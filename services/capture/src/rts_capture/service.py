"""capture's composition root: the parts built from the settings, wired, run, stopped."""

from __future__ import annotations

import logging

from rts_common.lifecycle import shutdown_event
from rts_common.ops import OpsServer

from rts_capture.capture_loop import CaptureLoop, probe, source_opener
from rts_capture.detect import DetectorError
from rts_capture.detect.worker import DetectionWorker, build_detectors, source_event
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
from rts_capture.status import StatusAnnouncer

log = logging.getLogger("capture")


def run(settings: CaptureSettings) -> int:
    """Capture until SIGTERM/SIGINT (or the end of a file); the process's exit code."""
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
        # `capture` and the rest do not exist yet: the lambdas look them up when asked.
        ops = OpsServer(
            metrics.registry,
            lambda: capture.readiness(),  # noqa: PLW0108
            settings.ops_host,
            settings.ops_port,
            components=lambda: [
                capture.heartbeat,
                detection.heartbeat,
                publisher.poller,
                announcer.task,
            ],
        )
    except OSError as exc:
        log.error("cannot serve /metrics on port %s: %s", settings.ops_port, exc)
        return 1
    publisher = Publisher.create(settings, metrics).start()

    def source_changed(up: bool, ts_ns: int, frames: int) -> None:
        publisher.send_event(source_event(camera, up, ts_ns, frames))
        metrics.detections("online" if up else "offline").inc()

    health = SourceHealth(metrics, camera, spec.describe(), on_change=source_changed)
    frames: Mailbox[Captured] = Mailbox()
    seq, backoff = sequence(), Backoff(0.5, settings.reconnect_max)

    def reader(opened: Opened | None, delay: float) -> SourceReader:
        return SourceReader(
            open_source,
            frames,
            health,
            metrics,
            seq,
            backoff=backoff,
            fps_cap=settings.fps,
            loop=settings.loop,
            first=opened,
            delay=delay,
        )

    detection = DetectionWorker(
        detectors,
        publisher.send_detection,
        metrics,
        camera,
        zones=settings.zone_list,
        masks=settings.mask_list,
    )
    encoder = JpegEncoder(
        settings.jpeg_quality, settings.max_width, on_reduced=lambda how: metrics.reduced(how).inc()
    )
    feed = Feed(
        reader,
        frames,
        health,
        backoff,
        stall_timeout=settings.stall_timeout,
        open_timeout=settings.open_timeout,
        first=first,
    )
    capture = CaptureLoop(
        feed, encoder, publisher, detection.start(), health=health, metrics=metrics, camera=camera
    )
    announcer = StatusAnnouncer(
        publisher, health, camera, spec.kind, settings.status_interval, settings.zone_list
    ).start()
    ops.start()
    try:
        capture.run(stop)
    finally:
        announcer.stop()
        capture.shutdown(settings.shutdown_timeout)
        ops.stop()
    return 0
