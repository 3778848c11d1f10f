"""Storage: what an hour of one camera takes in `video-frames`, from real JPEG sizes at
capture's defaults and what the partition's log on disk grows by per frame."""

from __future__ import annotations

import statistics
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

from bench.context import Bench, Section
from bench.processes import fresh_topics

TITLE = "Storage per camera-hour of video-frames"
SAMPLE_FPS = 25.0  # the generated sample video's rate (rts_capture.sample)

Render = Callable[[int], Image]


def pattern(width: int, height: int, face: Path) -> Render:
    source = TestPattern(
        width,
        height,
        TEST_PATTERN_FPS,
        label="cam-test",
        face=load_face(face, round(height * FACE_HEIGHT)),
    )
    start = time.time_ns()
    return lambda n: source.render(n, start + round(n * 1e9 / TEST_PATTERN_FPS))


def per_frame_on_disk(
    bench: Bench, encoder: JpegEncoder, render: Render, count: int
) -> tuple[float, float]:
    """Mean JPEG bytes, and what the partition's log grew by per frame, for `count` frames
    written as capture writes them (key, the four headers, one record per batch)."""
    topic = fresh_topics(bench.kafka, [VIDEO_FRAMES]) + VIDEO_FRAMES.name
    producer = Producer(
        {
            "bootstrap.servers": bench.kafka.bootstrap,
            "linger.ms": 0,
            "compression.type": "none",
            "message.max.bytes": FRAME_TOPIC_MAX_MESSAGE_BYTES,
        }
    )
    sizes = []
    for n in range(count):
        encoded = encoder.encode(render(n))
        meta = FrameMeta("cam-test", n, time.time_ns(), encoded.width, encoded.height)
        headers: list[tuple[str, str | bytes | None]] = [*meta.headers()]
        producer.produce(topic, encoded.jpeg, key="cam-test", partition=0, headers=headers)
        producer.flush(10)  # one record per batch, as capture's 2 ms linger gives
        sizes.append(len(encoded.jpeg))
    del producer  # closed before the broker stops
    logs = Path(bench.kafka.nodes[0].data_dir).rglob(f"{topic}-0/*.log")
    return statistics.fmean(sizes), sum(path.stat().st_size for path in logs) / count


def run(bench: Bench) -> Section:
    seconds = bench.pick(2, 20)
    section = Section(
        "storage",
        TITLE,
        f"""
How long video stays replayable is the retention of `video-frames` (`VIDEO_RETENTION_MINUTES`
for `make run`, `kafka.videoRetentionMinutes` in the chart); this is what it costs. Each
source is rendered for {seconds} s of video, encoded with capture's own encoder at its
defaults (JPEG quality 80, at most 1280 px wide) and written to a fresh topic as capture
writes it; the partition's log on disk then gives the bytes per frame, record overhead
included. Per camera-hour = fps x 3600 x bytes per frame, for one replica.
""",
    )
    defaults = CaptureSettings.load([])
    encoder = JpegEncoder(defaults.jpeg_quality, defaults.max_width)
    face = bench.logs / "face.png"
    if not write_face(face):
        raise RuntimeError("could not write the test face (scikit-image missing?)")
    sources: list[tuple[str, float, Render]] = [
        (
            "test pattern 640x480 with the face (cam-test)",
            TEST_PATTERN_FPS,
            pattern(640, 480, face),
        ),
        (
            "generated sample video 640x360 (cam-sample)",
            SAMPLE_FPS,
            lambda n: sample_frame(n, SAMPLE_FPS, 640, 360),
        ),
        ("test pattern 1280x720 with the face", TEST_PATTERN_FPS, pattern(1280, 720, face)),
    ]
    table = section.table(
        "Per camera, one replica",
        "source",
        "fps",
        "mean JPEG",
        "on disk per frame",
        "per camera-hour",
    )
    for name, fps, render in sources:
        with bench.span(name):
            mean, on_disk = per_frame_on_disk(bench, encoder, render, round(seconds * fps))
        hour = on_disk * fps * 3600
        table.add(
            name,
            f"{fps:g}",
            f"{mean / 1024:.1f} KiB",
            f"{on_disk / 1024:.1f} KiB",
            f"{hour / 2**30:.2f} GiB",
        )
        print(
            f"  {name}: {mean / 1024:.1f} KiB per JPEG, {hour / 2**30:.2f} GiB per hour", flush=True
        )
        section.data[name] = {"fps": fps, "jpeg_bytes": mean, "bytes_per_frame": on_disk}
    section.notes.append(
        "real cameras vary with the scene: a camera's own mean frame size is "
        "capture_frame_bytes (sum over count)"
    )
    return section
