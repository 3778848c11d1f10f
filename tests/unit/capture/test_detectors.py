import cv2
import numpy as np
import pytest
from rts_capture.detect.face import FaceDetector
from rts_capture.detect.motion import MotionDetector
from rts_capture.sources.pattern import TestPattern
from skimage import data

# Where the frontal-face cascade finds the astronaut's face in skimage's 512x512 portrait.
ASTRONAUT_FACE = (177, 66, 95, 95)


@pytest.fixture(scope="module")
def astronaut() -> np.ndarray:
    return np.ascontiguousarray(data.astronaut()[:, :, ::-1])  # RGB → BGR


def _overlap(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> float:
    """Intersection over union of two [x, y, w, h] boxes."""
    x0, y0 = max(a[0], b[0]), max(a[1], b[1])
    x1, y1 = min(a[0] + a[2], b[0] + b[2]), min(a[1] + a[3], b[1] + b[3])
    inter = max(0, x1 - x0) * max(0, y1 - y0)
    return inter / (a[2] * a[3] + b[2] * b[3] - inter)


def _scene(square_x: int | None, width: int = 640, height: int = 480) -> np.ndarray:
    image = np.full((height, width, 3), 90, np.uint8)
    if square_x is not None:
        image[200:260, square_x : square_x + 60] = (30, 220, 250)
    return image


def test_a_still_blank_scene_has_no_motion() -> None:
    motion = MotionDetector()
    assert all(not motion.detect(_scene(None)).boxes for _ in range(20))


def test_a_moving_square_is_boxed_in_frame_pixels() -> None:
    motion = MotionDetector(width=320)
    motion.detect(_scene(100))
    found = motion.detect(_scene(130))
    assert len(found.boxes) == 1
    x, y, w, h = found.boxes[0]
    # The box covers where the square was and where it is now, in 640-pixel coordinates.
    assert x <= 104
    assert x + w >= 186
    assert y <= 204
    assert y + h >= 256
    assert 0 < found.score < 0.1


def test_sensor_noise_below_the_threshold_is_not_motion() -> None:
    rng = np.random.default_rng(1)
    motion = MotionDetector()
    base = _scene(None).astype(np.int16)
    for _ in range(10):
        noisy = np.clip(base + rng.integers(-8, 9, base.shape), 0, 255).astype(np.uint8)
        assert not motion.detect(noisy).boxes


def test_movement_smaller_than_the_minimum_area_is_ignored() -> None:
    motion = MotionDetector(min_area=0.05)
    motion.detect(_scene(100))
    assert not motion.detect(_scene(130)).boxes


def test_the_test_pattern_triggers_motion() -> None:
    pattern = TestPattern(640, 480, 15)
    motion = MotionDetector()
    results = [motion.detect(pattern.render(n, 1)) for n in range(10)]
    assert all(r.boxes for r in results[1:])


def test_the_face_cascade_finds_the_astronaut(astronaut: np.ndarray) -> None:
    found = FaceDetector(min_size=32).detect(astronaut)
    assert len(found.boxes) == 1
    assert _overlap(found.boxes[0], ASTRONAUT_FACE) > 0.6
    assert found.score > 0


def test_boxes_are_in_the_pixels_of_the_frame_given(astronaut: np.ndarray) -> None:
    big = cv2.resize(astronaut, (1024, 1024))
    found = FaceDetector(width=512).detect(big)
    doubled = tuple(2 * v for v in ASTRONAUT_FACE)
    assert len(found.boxes) == 1
    assert _overlap(found.boxes[0], doubled) > 0.6


def test_a_blank_scene_has_no_face() -> None:
    assert not FaceDetector().detect(_scene(None)).boxes
    assert not FaceDetector().detect(_scene(300)).boxes


def test_a_face_moving_through_the_test_pattern_is_found(astronaut: np.ndarray) -> None:
    face = cv2.resize(astronaut[10:310, 110:350], (192, 240))
    pattern = TestPattern(640, 480, 15, face=face)
    detector = FaceDetector()
    hits = [n for n in range(0, 180, 30) if detector.detect(pattern.render(n, 1)).boxes]
    assert len(hits) >= 5
