import numpy as np
from rts_capture.detect import Detector, Found
from rts_capture.detect.worker import DetectionWorker, build_detectors
from rts_capture.metrics import CaptureMetrics
from rts_capture.settings import CaptureSettings
from rts_common.contracts import Detection, FrameMeta

from tests.unit.capture.conftest import sample

FRAME = np.zeros((48, 64, 3), np.uint8)


class Scripted(Detector):
    """Returns the boxes it was scripted with, one list per call."""

    def __init__(self, kind: str, script: list[list[tuple[int, int, int, int]]], every: int = 1):
        self.kind = kind  # type: ignore[assignment]
        self.every = every
        self.script = list(script)
        self.calls = 0

    def detect(self, image: np.ndarray) -> Found:
        self.calls += 1
        boxes = self.script.pop(0) if self.script else []
        return Found(boxes, 0.5 if boxes else 0.0)


def _meta(seq: int) -> FrameMeta:
    return FrameMeta("cam", seq, 1_790_000_000_000_000_000 + seq, 64, 48)


def _worker(detectors: list[Detector], metrics: CaptureMetrics) -> tuple[DetectionWorker, list]:
    sent: list[Detection] = []

    def publish(detection: Detection) -> bool:
        sent.append(detection)
        return True

    return DetectionWorker(detectors, publish, metrics, "cam"), sent


def test_results_carry_the_frame_they_came_from_and_its_size(metrics: CaptureMetrics) -> None:
    worker, sent = _worker([Scripted("motion", [[(1, 2, 3, 4)]])], metrics)
    worker.process(FRAME, _meta(7))
    assert len(sent) == 1
    d = sent[0]
    assert (d.camera, d.seq, d.ts, d.kind) == ("cam", 7, _meta(7).ts_ns, "motion")
    assert (d.boxes, d.width, d.height) == ([(1, 2, 3, 4)], 64, 48)
    assert sample(metrics, "capture_detections_total", kind="motion") == 1


def test_nothing_found_publishes_nothing_except_once_to_clear_boxes(
    metrics: CaptureMetrics,
) -> None:
    box = (5, 5, 10, 10)
    worker, sent = _worker([Scripted("motion", [[], [box], [box], [], [], []])], metrics)
    for seq in range(6):
        worker.process(FRAME, _meta(seq))
    assert [(d.seq, d.boxes) for d in sent] == [(1, [box]), (2, [box]), (3, [])]


def test_a_detector_runs_on_every_nth_frame(metrics: CaptureMetrics) -> None:
    motion, face = Scripted("motion", []), Scripted("face", [], every=5)
    worker, _ = _worker([motion, face], metrics)
    for seq in range(12):
        worker.process(FRAME, _meta(seq))
    assert (motion.calls, face.calls) == (12, 3)


def test_a_failing_detector_is_counted_and_the_others_go_on(metrics: CaptureMetrics) -> None:
    class Broken(Detector):
        kind = "face"

        def detect(self, image: np.ndarray) -> Found:
            raise ValueError("bad frame")

    worker, sent = _worker([Broken(), Scripted("motion", [[(1, 1, 2, 2)]])], metrics)
    worker.process(FRAME, _meta(0))
    assert [d.kind for d in sent] == ["motion"]
    assert sample(metrics, "capture_detect_errors_total") == 1


def test_detectors_can_be_switched_off() -> None:
    kinds = lambda argv: [d.kind for d in build_detectors(CaptureSettings.load(argv, {}))]  # noqa: E731
    assert kinds([]) == ["motion", "face"]
    assert kinds(["--no-motion"]) == ["face"]
    assert kinds(["--no-motion", "--no-faces"]) == []
