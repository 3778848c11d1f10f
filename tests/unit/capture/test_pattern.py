from pathlib import Path

import cv2
import numpy as np
import pytest
from rts_capture.sources import SourceError
from rts_capture.sources.pattern import TestPattern, load_face

CLOCK = 1_790_000_000_123_000_000


def test_a_frame_depends_only_on_its_number_and_clock() -> None:
    a = TestPattern(320, 240, 15).render(42, CLOCK)
    b = TestPattern(320, 240, 15).render(42, CLOCK)
    assert a.shape == (240, 320, 3)
    assert a.dtype == np.uint8
    assert np.array_equal(a, b)


def test_the_scene_moves_from_frame_to_frame() -> None:
    pattern = TestPattern(320, 240, 15)
    first, later = pattern.render(0, CLOCK), pattern.render(5, CLOCK)
    changed = np.any(first != later, axis=2).mean()
    assert changed > 0.01


def test_read_numbers_frames_and_never_ends() -> None:
    pattern = TestPattern(160, 120, 30)
    frames = [pattern.read() for _ in range(3)]
    assert all(f is not None for f in frames)
    assert pattern.frame == 3
    assert pattern.paced
    assert not pattern.finite


def test_a_face_image_is_drawn_into_the_scene(tmp_path: Path) -> None:
    face_file = tmp_path / "face.png"
    cv2.imwrite(str(face_file), np.full((40, 30, 3), (0, 0, 255), np.uint8))
    face = load_face(face_file, 60)
    assert face.shape == (60, 45, 3)
    frame = TestPattern(320, 240, 15, face=face).render(0, CLOCK)
    pure_red = np.all(frame == (0, 0, 255), axis=2)
    assert pure_red.sum() >= 60 * 40


def test_a_missing_face_image_is_a_clear_source_error(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="face image"):
        load_face(tmp_path / "nope.png", 100)
