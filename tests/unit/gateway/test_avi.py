"""The clip container: Motion JPEG in AVI, checked by decoding it with OpenCV (the test
environment has it; the gateway does not)."""

import io
from pathlib import Path

import cv2
import pytest
from PIL import Image
from rts_gateway.video.past.avi import AviLayout, ClipTooLarge, PlannedFrame
from rts_gateway.video.past.clip import _shown


def jpegs(count: int) -> list[bytes]:
    out = []
    for i in range(count):
        buffer = io.BytesIO()
        Image.new("RGB", (160, 120), (i * 9 % 256, 90, 200)).save(buffer, "JPEG", quality=80)
        out.append(buffer.getvalue())
    return out


def decode(path: Path, backend: int) -> tuple[int, float, list[tuple[int, int]]]:
    capture = cv2.VideoCapture(str(path), backend)
    assert capture.isOpened()
    fps, sizes = capture.get(cv2.CAP_PROP_FPS), []
    while True:
        ok, image = capture.read()
        if not ok:
            break
        sizes.append(image.shape[:2])
    capture.release()
    return len(sizes), fps, sizes


@pytest.mark.parametrize("backend", [cv2.CAP_FFMPEG, cv2.CAP_OPENCV_MJPEG])
def test_a_clip_decodes_with_its_frame_count_and_capture_pace(tmp_path: Path, backend: int) -> None:
    images = jpegs(31)  # odd sizes too: chunks are padded to even lengths
    frames = [
        PlannedFrame(100 + 2 * i, len(j), 10**18 + i * 200_000_000) for i, j in enumerate(images)
    ]
    layout = AviLayout(frames, 160, 120, span_ns=6 * 10**9)
    data = layout.header() + b"".join(layout.frame(j) for j in images)
    data += layout.index(list(range(len(images))))
    assert len(data) == layout.total_bytes
    path = tmp_path / "clip.avi"
    path.write_bytes(data)
    count, fps, sizes = decode(path, backend)
    assert count == 31
    assert fps == pytest.approx(5.0)
    assert count / fps == pytest.approx(layout.duration_seconds) == pytest.approx(6.2)
    assert set(sizes) == {(120, 160)}


def test_a_frame_missing_on_the_second_pass_keeps_the_file_length_and_frame_count(
    tmp_path: Path,
) -> None:
    images = jpegs(10)
    frames = [PlannedFrame(i, len(j), 10**18 + i * 10**8) for i, j in enumerate(images)]
    layout = AviLayout(frames, 160, 120, span_ns=10**9)
    found = [i not in (0, 4) for i in range(10)]
    body = b"".join(
        layout.frame(j) if ok else layout.filler(len(j))
        for j, ok in zip(images, found, strict=True)
    )
    data = layout.header() + body + layout.index(_shown(found))
    assert len(data) == layout.total_bytes
    assert _shown(found) == [1, 1, 2, 3, 3, 5, 6, 7, 8, 9]
    path = tmp_path / "clip.avi"
    path.write_bytes(data)
    assert decode(path, cv2.CAP_OPENCV_MJPEG)[0] == 10  # read through the index


def test_a_clip_larger_than_an_avi_file_holds_is_refused() -> None:
    frames = [PlannedFrame(i, 4 * 1024 * 1024, i * 10**8) for i in range(300)]
    with pytest.raises(ClipTooLarge, match="shorter range"):
        AviLayout(frames, 1920, 1080, span_ns=30 * 10**9)
