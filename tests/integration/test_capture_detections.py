"""Detections on the real broker: motion and faces in the test pattern, none in a blank scene."""

from pathlib import Path

import numpy as np
from rts_capture.sample import write_face, write_video
from rts_common.contracts import VIDEO_DETECTIONS, VIDEO_FRAMES, Detection

from tests.fixtures.capture import Launcher, read_topic
from tests.fixtures.kafka import KafkaUnderTest


def test_the_test_pattern_with_a_face_gives_motion_and_face_boxes(
    kafka: KafkaUnderTest, topic_prefix: str, launch_capture: Launcher, tmp_path: Path
) -> None:
    assert write_face(tmp_path / "face.png")
    capture = launch_capture(
        *"--source test --camera-id cam-det --test-face".split(),
        str(tmp_path / "face.png"),
        "--face-every",
        "2",
    )

    def kinds(records: list) -> list[str]:
        return [Detection.model_validate_json(r.value()).kind for r in records]

    records = read_topic(
        kafka,
        topic_prefix + VIDEO_DETECTIONS.name,
        timeout=20,
        until=lambda got: min(kinds(got).count("motion"), kinds(got).count("face")) >= 3,
    )
    assert capture.terminate() == 0
    assert {r.key() for r in records} == {b"cam-det"}
    seen: dict[str, list[Detection]] = {"motion": [], "face": []}
    for record in records:
        detection = Detection.model_validate_json(record.value())
        seen[detection.kind].append(detection)
    assert len(seen["motion"]) >= 3
    assert len(seen["face"]) >= 3
    for detection in seen["motion"] + seen["face"]:
        assert detection.camera == "cam-det"
        assert (detection.width, detection.height) == (640, 480)
        assert all(
            min(x, y) >= 0 and x + w <= 640 and y + h <= 480 for x, y, w, h in detection.boxes
        )
    assert all(d.boxes for d in seen["face"][:3])


def _blank(_n: int, _fps: float, width: int, height: int) -> np.ndarray:
    return np.full((height, width, 3), 128, np.uint8)


def test_a_still_blank_scene_gives_no_detections(
    kafka: KafkaUnderTest, topic_prefix: str, launch_capture: Launcher, tmp_path: Path
) -> None:
    clip = write_video(tmp_path / "blank.mp4", frames=40, fps=40, size=(640, 480), scene=_blank)
    capture = launch_capture("--source", str(clip), "--camera-id", "cam-blank", "--face-every", "1")
    assert capture.wait_exit(20) == 0
    frames = read_topic(kafka, topic_prefix + VIDEO_FRAMES.name, count=40, timeout=10, idle=2)
    # The detectors had frames to look at. A loaded machine may skip one as "behind"
    # (capture never sends a frame late): what matters here is that none was detected.
    assert len(frames) >= 30
    assert read_topic(kafka, topic_prefix + VIDEO_DETECTIONS.name, timeout=3, idle=2) == []
