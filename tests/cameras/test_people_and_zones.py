"""People in OpenCV's own street footage (opencv-doc's vtest.avi), none in the same street
emptied, and zones and masks on capture's real output."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from confluent_kafka import Message
from rts_capture.detect.person import PersonDetector
from rts_capture.sample import write_face
from rts_common.contracts import VIDEO_DETECTIONS, Detection

from tests.fixtures.capture import Launcher, read_topic
from tests.fixtures.kafka import KafkaUnderTest

SAMPLES = Path("/usr/share/doc/opencv-doc/examples/data")
STREET = SAMPLES / "vtest.avi"  # people walking through a street: 768x576, 10 fps, 795 frames


@pytest.fixture(scope="module")
def street() -> list[np.ndarray]:
    """Every 25th frame of vtest.avi."""
    if not STREET.exists():
        pytest.fail(f"{STREET} is missing: `sudo make system-deps` installs opencv-doc")
    capture = cv2.VideoCapture(str(STREET))
    frames, n = [], 0
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        if n % 25 == 0:
            frames.append(frame)
        n += 1
    return frames


def test_people_are_found_where_they_walk_and_not_in_the_empty_street(
    street: list[np.ndarray],
) -> None:
    detector = PersonDetector()
    walking = street[::4]  # people walk through every part of the clip
    found = [detector.detect(frame) for frame in walking]
    assert all(f.boxes for f in found), [len(f.boxes) for f in found]
    for result in found:
        for x, _y, w, h in result.boxes:
            assert x >= -16  # HOG pads the frame by 8 pixels each side
            assert x + w <= 768 + 16
            assert h > w  # upright
    # The same street with nobody in it: the median of frames taken seconds apart.
    empty = np.median(np.stack(street), axis=0).astype(np.uint8)
    assert detector.detect(empty).boxes == []


def test_capture_reports_people_in_the_street_with_their_zone(
    kafka: KafkaUnderTest, topic_prefix: str, launch_capture: Launcher
) -> None:
    capture = launch_capture(
        *f"--source {STREET} --camera-id cam-street --loop".split(),
        *"--no-faces --no-motion --people --people-every 1".split(),
        "--zones",
        "pavement=0,0.5 1,0.5 1,1 0,1",
    )
    records = read_topic(
        kafka,
        topic_prefix + VIDEO_DETECTIONS.name,
        timeout=60,
        until=lambda got: len([d for d in _detections(got) if d.boxes]) >= 3,
    )
    assert capture.terminate() == 0
    detections = _detections(records)
    assert {d.kind for d in detections} == {"person"}
    # A frame where the detector finds nobody after one where it found someone publishes
    # one result without boxes (viewers clear what they draw): no box, no zone.
    for cleared in [d for d in detections if not d.boxes]:
        assert cleared.zones == []
    people = [d for d in detections if d.boxes]
    assert len(people) >= 3
    for person in people:
        assert (person.width, person.height) == (768, 576)
        standing_low = any(y + h >= 288 for _x, y, _w, h in person.boxes)
        assert person.zones == (["pavement"] if standing_low else [])


def test_zones_label_the_face_and_a_mask_hides_its_region(
    kafka: KafkaUnderTest, topic_prefix: str, launch_capture: Launcher, tmp_path: Path
) -> None:
    assert write_face(tmp_path / "face.png")
    # The door: the right 40% of the frame. The mask: the top left corner (the label).
    capture = launch_capture(
        *"--source test --camera-id cam-zones --face-every 2 --test-face".split(),
        str(tmp_path / "face.png"),
        *["--zones", "door=0.6,0 1,0 1,1 0.6,1", "--masks", "label=0,0 0.5,0 0.5,0.5 0,0.5"],
    )

    def found(got: list[Message], kind: str) -> int:
        """Results of `kind` with boxes (not the one that clears them after a miss)."""
        return len([d for d in _detections(got) if d.kind == kind and d.boxes])

    records = read_topic(
        kafka,
        topic_prefix + VIDEO_DETECTIONS.name,
        timeout=60,
        until=lambda got: found(got, "motion") >= 20 and found(got, "face") >= 3,
    )
    assert capture.terminate() == 0
    detections = _detections(records)
    faces = [d for d in detections if d.kind == "face" and d.boxes]
    assert len(faces) >= 3
    for face in faces:
        feet = [(x + w / 2, y + h) for x, y, w, h in face.boxes]
        assert face.zones == (["door"] if any(fx >= 384 for fx, _ in feet) else [])
    # Nothing is detected inside the masked quarter: no box lies wholly within it.
    for detection in detections:
        for x, y, w, h in detection.boxes:
            assert not (x + w <= 320 and y + h <= 240), (detection.kind, (x, y, w, h))


def _detections(records: list[Message]) -> list[Detection]:
    return [Detection.model_validate_json(r.value()) for r in records]
