"""Storage per camera-hour of `video-frames`: real JPEG sizes at capture's defaults, and
what Kafka's log grows by per frame, measured on a local broker.

Two sources, as `make run` shows them: the test pattern (640x480 with the astronaut's
face, 15 fps) and the generated sample video (640x360, 25 fps); and the test pattern at
1280x720 for a larger camera. Each is rendered for `--seconds` of video, encoded with
capture's own encoder at its defaults (JPEG quality 80, at most 1280 wide), and written
to a fresh topic as capture writes it (key, the four headers, one record per batch, no
compression); the partition's log on disk then says what a frame costs. Printed:

    bytes per camera-hour = fps x 3600 x (mean JPEG + per-record overhead) x replicas

    .venv/bin/python bench/frame_storage.py [--seconds 20]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from confluent_kafka import Producer
from rts_capture.capture_loop import FACE_HEIGHT
from rts_capture.encode import JpegEncoder
from rts_capture.sample import sample_frame, write_face
from rts_capture.settings import TEST_PATTERN_FPS, CaptureSettings
from rts_capture.sources import Image
from rts_capture.sources.pattern import TestPattern, load_face
from rts_common.contracts import FRAME_TOPIC_MAX_MESSAGE_BYTES, VIDEO_FRAMES, FrameMeta
from support import fresh_topics, local_broker

Render = Callable[[int], Image]


def pattern(width: int, height: int, face: Path) -> Render:
    source = TestPattern(width, height, TEST_PATTERN_FPS, label="cam-test",
                         face=load_face(face, round(height * FACE_HEIGHT)))  # fmt: skip
    start = time.time_ns()
    return lambda n: source.render(n, start + round(n * 1e9 / TEST_PATTERN_FPS))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=20.0, help="video per source")
    args = parser.parse_args()
    defaults = CaptureSettings.load([])
    encoder = JpegEncoder(defaults.jpeg_quality, defaults.max_width)
    with tempfile.TemporaryDirectory(prefix="rts-storage-") as tmp, local_broker() as kafka:
        face = Path(tmp) / "face.png"
        assert write_face(face), "scikit-image is needed for the face"
        sources: list[tuple[str, float, Render]] = [
            ("test pattern 640x480 (make run)", TEST_PATTERN_FPS, pattern(640, 480, face)),
            ("sample video 640x360 (make run)", 25.0, lambda n: sample_frame(n, 25.0, 640, 360)),
            ("test pattern 1280x720", TEST_PATTERN_FPS, pattern(1280, 720, face)),
        ]
        print(f"JPEG quality {defaults.jpeg_quality}, max width {defaults.max_width}; "
              f"{args.seconds:g} s of video per source")  # fmt: skip
        print(f"{'source':34} {'fps':>5} {'JPEG mean':>10} {'on disk':>9} {'per hour':>10}")
        for name, fps, render in sources:
            prefix = fresh_topics(kafka)
            topic = prefix + VIDEO_FRAMES.name
            producer = Producer({
                "bootstrap.servers": kafka.bootstrap, "linger.ms": 0,
                "compression.type": "none", "message.max.bytes": FRAME_TOPIC_MAX_MESSAGE_BYTES,
            })  # fmt: skip
            sizes = []
            for n in range(round(args.seconds * fps)):
                encoded = encoder.encode(render(n))
                meta = FrameMeta("cam-test", n, time.time_ns(), encoded.width, encoded.height)
                producer.produce(topic, encoded.jpeg, key="cam-test", partition=0,
                                 headers=meta.headers())  # fmt: skip
                producer.flush(10)  # one record per batch, as capture's 2 ms linger gives
                sizes.append(len(encoded.jpeg))
            del producer  # closed before the broker stops
            logs = Path(kafka.nodes[0].data_dir).rglob(f"{topic}-0/*.log")
            on_disk = sum(path.stat().st_size for path in logs) / len(sizes)
            mean = statistics.fmean(sizes)
            per_hour = on_disk * fps * 3600
            print(f"{name:34} {fps:5g} {mean / 1024:8.1f} KiB {on_disk / 1024:5.1f} KiB "
                  f"{per_hour / 2**30:6.2f} GiB")  # fmt: skip
        print("per hour: one camera, one replica; multiply by the topic's replicas on a cluster")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
