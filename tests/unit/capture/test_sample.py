from pathlib import Path

import cv2
from rts_capture.detect.face import FaceDetector
from rts_capture.sample import main, write_face, write_video


def test_the_sample_video_has_the_frames_and_rate_it_was_written_with(tmp_path: Path) -> None:
    path = write_video(tmp_path / "clip.mp4", frames=30, fps=15, size=(320, 180))
    capture = cv2.VideoCapture(str(path))
    assert capture.get(cv2.CAP_PROP_FPS) == 15
    frames = 0
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        assert frame.shape == (180, 320, 3)
        frames += 1
    capture.release()
    assert frames == 30
    assert not list(tmp_path.glob(".*partial*"))


def test_the_face_image_has_a_face_the_cascade_finds(tmp_path: Path) -> None:
    assert write_face(tmp_path / "face.png")
    image = cv2.imread(str(tmp_path / "face.png"))
    assert len(FaceDetector().detect(image).boxes) == 1


def test_the_generator_writes_missing_files_only(tmp_path: Path) -> None:
    assert main([str(tmp_path), "--seconds", "0.4"]) == 0
    video = tmp_path / "sample.mp4"
    first = video.stat().st_mtime_ns
    assert (tmp_path / "face.png").exists()
    assert main([str(tmp_path), "--seconds", "0.4"]) == 0
    assert video.stat().st_mtime_ns == first
