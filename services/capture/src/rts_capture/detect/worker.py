"""The detection thread: runs the enabled detectors on the newest frame and publishes results.

Detection runs beside the capture loop, not in it, so a slow detector (the face cascade
on a big frame) delays detections, never frames. When it is still busy, newer frames
replace the one waiting, and the skip is counted.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from rts_common.contracts import Detection, FrameMeta
from rts_common.tasks import Heartbeat

from rts_capture.detect import Detector
from rts_capture.detect.face import FaceDetector
from rts_capture.detect.motion import MotionDetector
from rts_capture.detect.person import PersonDetector
from rts_capture.metrics import CaptureMetrics
from rts_capture.reader import Mailbox
from rts_capture.settings import CaptureSettings
from rts_capture.sources import Image
from rts_capture.zones import Masks, Zone, zones_of

log = logging.getLogger(__name__)

Publish = Callable[[Detection], bool]


def build_detectors(settings: CaptureSettings) -> list[Detector]:
    detectors: list[Detector] = []
    if settings.motion:
        detectors.append(
            MotionDetector(
                width=settings.motion_width,
                threshold=settings.motion_threshold,
                min_area=settings.motion_min_area,
            )
        )
    if settings.faces:
        detectors.append(
            FaceDetector(
                every=settings.face_every,
                width=settings.face_width,
                min_size=settings.face_min_size,
            )
        )
    if settings.people:
        detectors.append(
            PersonDetector(
                every=settings.people_every,
                width=settings.people_width,
                min_score=settings.people_min_score,
            )
        )
    return detectors


class DetectionWorker:
    def __init__(
        self,
        detectors: list[Detector],
        publish: Publish,
        metrics: CaptureMetrics,
        camera: str,
        *,
        zones: tuple[Zone, ...] = (),
        masks: tuple[Zone, ...] = (),
    ) -> None:
        self._detectors = detectors
        self._publish = publish
        self._metrics = metrics
        self._camera = camera
        self._zones = zones
        self._masks = Masks(masks)
        self._inbox: Mailbox[tuple[Image, FrameMeta]] = Mailbox()
        self._stop = threading.Event()
        # Whether a detector's last published result had boxes: a result without boxes is
        # published once after it, so viewers clear the boxes they draw.
        self._showing = {d.kind: False for d in detectors}
        self._frames = 0
        self._thread = threading.Thread(target=self._run, name="detect", daemon=True)
        # A detector that hangs on a frame stops the thread's rounds.
        self.heartbeat = Heartbeat("detection", max_silence=60.0)

    def start(self) -> DetectionWorker:
        if self._detectors:
            self.heartbeat.beat()
            self._thread.start()
        return self

    def offer(self, image: Image, meta: FrameMeta) -> None:
        if not self._detectors:
            return
        if self._inbox.put((image, meta)) is not None:
            self._metrics.detect_skipped.inc()

    def stop(self, timeout: float = 2.0) -> None:
        self._stop.set()
        self.heartbeat.done()
        self._inbox.close()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.heartbeat.beat()
            item = self._inbox.get(0.5)
            if item is not None:
                self.process(*item)

    def process(self, image: Image, meta: FrameMeta) -> None:
        """Run the detectors that are due on one frame (the thread's body; tests call it)."""
        frame = self._frames
        self._frames += 1
        due = [d for d in self._detectors if frame % d.every == 0]
        if due and self._masks:
            image = self._masks.apply(image)
        for detector in due:
            started = time.perf_counter()
            try:
                found = detector.detect(image)
            except Exception:  # one bad frame must not stop detection
                self._metrics.detect_errors.inc()
                log.exception("detector failed", extra={"kind": detector.kind, "seq": meta.seq})
                continue
            self._metrics.detect_seconds(detector.kind).observe(time.perf_counter() - started)
            if not found.boxes and not self._showing[detector.kind]:
                continue
            detection = Detection(
                camera=self._camera,
                seq=meta.seq,
                ts=meta.ts_ns,
                kind=detector.kind,
                boxes=found.boxes,
                score=found.score,
                width=meta.width,
                height=meta.height,
                zones=zones_of(self._zones, found.boxes, meta.width, meta.height),
            )
            if self._publish(detection):
                self._showing[detector.kind] = bool(found.boxes)
                self._metrics.detections(detector.kind).inc()


def source_event(camera: str, up: bool, ts_ns: int, frames: int) -> Detection:
    """The camera's source went offline (ts: its last frame) or came online again (ts:
    its first frame): what the timeline shows as a gap and the notifier pushes."""
    return Detection(
        camera=camera, seq=frames, ts=ts_ns, kind="online" if up else "offline", boxes=[], score=0
    )
