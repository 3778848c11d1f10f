import cv2
import numpy as np
import pytest
from rts_capture.encode import EncodeError, JpegEncoder, scale_to_width
from rts_common.contracts import check_jpeg


def _noise(width: int, height: int) -> np.ndarray:
    return np.random.default_rng(7).integers(0, 256, (height, width, 3), dtype=np.uint8)


def test_frames_wider_than_max_width_are_scaled_keeping_the_aspect() -> None:
    assert scale_to_width(np.zeros((1080, 1920, 3), np.uint8), 1280).shape == (720, 1280, 3)
    small = np.zeros((240, 320, 3), np.uint8)
    assert scale_to_width(small, 1280) is small
    assert scale_to_width(small, 0) is small


def test_encoded_frame_is_a_jpeg_of_the_stated_size() -> None:
    encoded = JpegEncoder(80, max_width=640).encode(_noise(1280, 720))
    assert (encoded.width, encoded.height) == (640, 360)
    check_jpeg(encoded.jpeg)
    decoded = cv2.imdecode(np.frombuffer(encoded.jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert decoded.shape == (360, 640, 3)


def test_a_frame_over_the_limit_is_reencoded_smaller_and_counted() -> None:
    reductions: list[str] = []
    frame = _noise(640, 480)
    full = len(JpegEncoder(95).encode(frame).jpeg)
    encoder = JpegEncoder(95, limit=full // 6, on_reduced=reductions.append)
    encoded = encoder.encode(frame)
    assert len(encoded.jpeg) <= full // 6
    assert reductions[0] == "quality"
    assert "size" in reductions
    assert encoded.width < 640


def test_a_frame_that_cannot_fit_is_refused_as_too_large() -> None:
    with pytest.raises(EncodeError) as info:
        JpegEncoder(80, limit=200).encode(_noise(640, 480))
    assert info.value.reason == "too_large"
