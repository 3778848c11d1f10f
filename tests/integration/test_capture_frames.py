"""Capture on the real broker: frames in order, valid JPEGs of the stated size, capture times."""

import time
from pathlib import Path

import cv2
import numpy as np
from rts_capture.sample import write_video
from rts_common.contracts import VIDEO_FRAMES, FrameMeta, check_jpeg

from tests.fixtures.capture import Launcher, read_topic
from tests.fixtures.kafka import KafkaUnderTest


def _frames(kafka: KafkaUnderTest, prefix: str, **kwargs: float) -> list:
    return read_topic(kafka, prefix + VIDEO_FRAMES.name, **kwargs)  # type: ignore[arg-type]


def test_test_pattern_frames_arrive_in_order_per_camera_as_jpegs_of_the_stated_size(
    kafka: KafkaUnderTest, topic_prefix: str, launch_capture: Launcher
) -> None:
    started_ns = time.time_ns()
    cameras = {
        name: launch_capture(
            "--source",
            "test",
            "--camera-id",
            name,
            *"--fps 20 --test-width 320 --test-height 240".split(),
        )
        for name in ("cam-a", "cam-b")
    }

    def enough(got: list) -> bool:
        keys = [r.key() for r in got]
        return all(keys.count(name.encode()) >= 25 for name in cameras)

    records = read_topic(kafka, topic_prefix + VIDEO_FRAMES.name, timeout=20, until=enough)
    behind = {}
    for name, capture in cameras.items():
        capture.wait_for(capture.ready, 5, "readiness")
        assert capture.metric("capture_source_up") == 1
        # A frame the encoder had no time for is replaced by the next and counted.
        behind[name] = capture.metric("capture_frames_dropped_total", reason="behind")
        assert capture.terminate() == 0
    finished_ns = time.time_ns()

    assert enough(records)
    by_camera: dict[str, list] = {}
    for record in records:
        by_camera.setdefault(record.key().decode(), []).append(record)
    assert set(by_camera) == set(cameras)
    for camera, own in by_camera.items():
        assert len({r.partition() for r in own}) == 1
        metas = [FrameMeta.from_record(r.key(), r.headers()) for r in own]
        seqs = [m.seq for m in metas]
        assert seqs == sorted(set(seqs))
        # Numbered from 0; a number missing only for a frame counted as dropped behind.
        assert seqs[-1] + 1 - len(seqs) <= behind[camera], (seqs, behind[camera])
        for record, meta in zip(own, metas, strict=True):
            jpeg = np.frombuffer(check_jpeg(record.value()), np.uint8)
            image = cv2.imdecode(jpeg, cv2.IMREAD_COLOR)
            assert image.shape == (meta.height, meta.width, 3) == (240, 320, 3)
            assert started_ns < meta.ts_ns < finished_ns
            # The record's own timestamp is the capture time too (replay seeks by it).
            assert record.timestamp()[1] == meta.ts_ns // 1_000_000
        stopped = [r for r in cameras[camera].log_records() if r.get("msg") == "capture stopped"]
        assert stopped[0]["undelivered"] == 0


def test_a_file_is_delivered_frame_by_frame_exactly_once_at_its_own_rate(
    kafka: KafkaUnderTest, topic_prefix: str, launch_capture: Launcher, tmp_path: Path
) -> None:
    clip = write_video(tmp_path / "clip.mp4", frames=24, fps=24, size=(160, 120))
    capture = launch_capture("--source", str(clip), "--camera-id", "cam-file", "--no-faces")
    assert capture.wait_exit(20) == 0
    records = _frames(kafka, topic_prefix, timeout=10, idle=2)
    metas = [FrameMeta.from_record(r.key(), r.headers()) for r in records]
    assert [m.seq for m in metas] == list(range(24))
    assert {(m.width, m.height) for m in metas} == {(160, 120)}
    # Paced at 24 fps: 23 frame intervals, never faster.
    assert (metas[-1].ts_ns - metas[0].ts_ns) / 1e9 >= 23 / 24 * 0.95
    assert any(r.get("msg") == "source ended" for r in capture.log_records())


def test_loop_plays_a_file_again_with_frame_numbers_that_keep_counting(
    kafka: KafkaUnderTest, topic_prefix: str, launch_capture: Launcher, tmp_path: Path
) -> None:
    clip = write_video(tmp_path / "clip.mp4", frames=8, fps=40, size=(160, 120))
    capture = launch_capture("--source", str(clip), "--camera-id", "cam-loop", "--loop")
    records = _frames(kafka, topic_prefix, count=20)
    # A frame the encoder had no time for is replaced by the next one and counted (live
    # video shows the newest frame): its number is a gap, never a repeat.
    behind = capture.metric("capture_frames_dropped_total", reason="behind")
    assert capture.terminate() == 0
    seqs = [FrameMeta.from_record(r.key(), r.headers()).seq for r in records]
    assert len(seqs) == 20
    # Numbers go on counting over the file's end (eight frames), never from 0 again.
    assert seqs == sorted(set(seqs))
    assert seqs[-1] + 1 - len(seqs) <= behind
