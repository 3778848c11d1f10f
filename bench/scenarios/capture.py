"""Capture: sustained fps and CPU of one camera process (test pattern with a face in it,
motion and face detection on), the most it sends with detection off, the JPEG encode
against the baseline's PNG, and the baseline article's producer on the same pictures."""

from __future__ import annotations

import re
import statistics
import time
from dataclasses import dataclass
from typing import Any

import cv2
from rts_capture.sample import write_face
from rts_capture.sources.pattern import TestPattern
from skimage import data

from bench.context import Bench, Section, ratio, times, verdict
from bench.machine import CpuMeter
from bench.processes import (
    baseline_video_producer,
    capture,
    fresh_topics,
    labelled_metrics,
    running,
)

TITLE = "Capture, per camera process"
SIZES = ((640, 480), (1280, 720), (1920, 1080))


@dataclass
class Run:
    fps: float
    cpu: float  # % of one core
    encode_ms: float
    frame_kib: float
    dropped: float
    detect_ms: dict[str, float]


def measure_capture(
    bench: Bench, prefix: str, size: tuple[int, int], args: list[Any], seconds: float, label: str
) -> Run:
    width, height = size
    proc, port = capture(
        bench.logs,
        bench.kafka,
        prefix,
        f"bench-{width}x{height}",
        "--test-width",
        width,
        "--test-height",
        height,
        "--max-width",
        0,
        *args,
    )
    with running(proc):
        time.sleep(bench.pick(1.0, 2.0))  # warm-up: first connections, the cascade's first runs
        with bench.span(label):
            before, meter, t0 = labelled_metrics(port, "kind"), CpuMeter(proc.pid), time.monotonic()
            time.sleep(seconds)
            after, cpu, wall = (
                labelled_metrics(port, "kind"),
                meter.percent(),
                time.monotonic() - t0,
            )
        proc.check()

    def delta(name: str) -> float:
        return after.get(name, 0.0) - before.get(name, 0.0)

    def mean(name: str) -> float:
        """Mean of a histogram; `name` may carry a label value after a colon."""
        base, _, label = name.partition(":")
        suffix = f":{label}" if label else ""
        n = delta(f"{base}_count{suffix}")
        return delta(f"{base}_sum{suffix}") / n if n else 0.0

    detect = {}
    for kind in ("motion", "face"):
        if delta(f"capture_detect_seconds_count:{kind}"):
            detect[kind] = 1000 * mean(f"capture_detect_seconds:{kind}")
    return Run(
        fps=delta("capture_frames_total") / wall,
        cpu=cpu,
        encode_ms=1000 * mean("capture_encode_seconds"),
        frame_kib=mean("capture_frame_bytes") / 1024,
        dropped=delta("capture_frames_dropped_total") / wall,
        detect_ms=detect,
    )


def encode_cost(image: Any, ext: str, params: list[int], repeat: int) -> tuple[float, int]:
    """Median ms of one encode, and the encoded size."""
    times_, size = [], 0
    for _ in range(repeat):
        started = time.perf_counter()
        ok, buffer = cv2.imencode(ext, image, params)
        times_.append(time.perf_counter() - started)
        if not ok:
            raise RuntimeError(f"cv2.imencode({ext}) failed")
        size = len(buffer)
    return 1000 * statistics.median(times_), size


def run(bench: Bench) -> Section:
    sizes = bench.pick([(1280, 720)], list(SIZES))
    seconds = bench.pick(3, 10)
    section = Section(
        "capture",
        TITLE,
        f"""
The real `capture` process on the test pattern with NASA's astronaut's face moving
through it (`--test-face`), measured {seconds} s after a 2 s warm-up from its `/metrics`
and its CPU time: **30 fps**, the default service (motion on every frame, faces on every
5th) asked for 30 fps; **max**, `--fps 120 --no-motion --no-faces`, the most one process
sends. Then, in the benchmark's process on one thread, the JPEG encode (quality 80)
against the baseline's `cv2.imencode(".png", frame)` on the same frames and on a
photograph; and the baseline article's producer (PNG, then a 0.2 s sleep,
`bench/baselines/video_producer.py`) at 1280x720 on the same test pattern.
""",
    )
    face = bench.out / "logs" / "face.png"
    face.parent.mkdir(parents=True, exist_ok=True)
    if not write_face(face):
        raise RuntimeError("could not write the test face (scikit-image missing?)")
    prefix = fresh_topics(bench.kafka)
    runs: dict[tuple[int, int], tuple[Run, Run]] = {}
    for size in sizes:
        label = f"{size[0]}x{size[1]}"
        live = measure_capture(
            bench, prefix, size, ["--fps", 30, "--test-face", face], seconds, f"{label} 30 fps"
        )
        fast = measure_capture(
            bench,
            prefix,
            size,
            ["--fps", 120, "--no-motion", "--no-faces"],
            seconds,
            f"{label} max",
        )
        runs[size] = (live, fast)
        print(
            f"  {label}: 30 fps → {live.fps:.1f} fps, CPU {live.cpu:.0f} %; max {fast.fps:.1f} "
            f"fps, CPU {fast.cpu:.0f} %",
            flush=True,
        )

    topic = prefix + "video-frames"
    producer = baseline_video_producer(bench.logs, bench.kafka, topic, "capture", 1280, 720)
    with running(producer):
        time.sleep(2.0)
        with bench.span("baseline producer"):
            meter = CpuMeter(producer.pid)
            time.sleep(seconds)
            base_cpu = meter.percent()
        producer.check()
    producer.stop()
    sent = re.search(r"sent \d+ frames, ([\d.]+) fps", producer.tail())
    base_fps = float(sent[1]) if sent else float("nan")
    print(f"  baseline producer 1280x720: {base_fps:.2f} fps, CPU {base_cpu:.0f} %", flush=True)

    table = section.table(
        "Per camera (one capture process), JPEG quality 80, no scaling; detector columns: mean "
        "ms of one run",
        "size",
        "30 fps: fps",
        "CPU",
        "motion",
        "face",
        "dropped/s",
        "max: fps",
        "CPU",
        "encode",
        "frame",
    )
    for (w, h), (live, fast) in runs.items():
        table.add(
            f"{w}x{h}",
            f"{live.fps:.1f}",
            f"{live.cpu:.0f} %",
            f"{live.detect_ms.get('motion', 0):.1f} ms",
            f"{live.detect_ms.get('face', 0):.1f} ms",
            f"{live.dropped:.1f}",
            f"{fast.fps:.1f}",
            f"{fast.cpu:.0f} %",
            f"{fast.encode_ms:.2f} ms",
            f"{fast.frame_kib:.0f} KiB",
        )

    cv2.setNumThreads(1)
    repeat = bench.pick(5, 30)
    frames: dict[str, Any] = {
        f"test {w}x{h}": TestPattern(w, h, 30).render(90, time.time_ns()) for w, h in sizes
    }
    # Flat synthetic colours flatter PNG; a photograph is what cameras see.
    frames["photo 1280x720"] = cv2.resize(
        data.astronaut()[:, :, ::-1],  # type: ignore[no-untyped-call]
        (1280, 720),
        interpolation=cv2.INTER_CUBIC,
    )
    codec = section.table(
        f"Codec, one thread of the benchmark's process (median of {repeat})",
        "frame",
        "JPEG",
        "JPEG size",
        "PNG",
        "PNG size",
        "PNG ÷ JPEG time",
        "PNG ÷ JPEG size",
    )
    codec_data = {}
    for name, frame in frames.items():
        jpeg = encode_cost(frame, ".jpg", [cv2.IMWRITE_JPEG_QUALITY, 80], repeat)
        png = encode_cost(frame, ".png", [], repeat)
        codec_data[name] = {"jpeg": jpeg, "png": png}
        codec.add(
            name,
            f"{jpeg[0]:.2f} ms",
            f"{jpeg[1] / 1024:.0f} KiB",
            f"{png[0]:.2f} ms",
            f"{png[1] / 1024:.0f} KiB",
            times(png[0] / jpeg[0]),
            times(png[1] / jpeg[1]),
        )

    live, fast = runs[(1280, 720)]
    base = section.table(
        "The baseline's producer against capture, 1280x720",
        "producer",
        "fps",
        "CPU",
        "CPU per frame",
    )
    base.add(
        "baseline (PNG + 0.2 s sleep)",
        f"{base_fps:.2f}",
        f"{base_cpu:.0f} %",
        f"{10 * base_cpu / base_fps:.1f} ms",
    )
    base.add(
        "capture, 30 fps with motion and faces",
        f"{live.fps:.1f}",
        f"{live.cpu:.0f} %",
        f"{10 * live.cpu / live.fps:.1f} ms",
    )
    base.add(
        "capture, max without detection",
        f"{fast.fps:.1f}",
        f"{fast.cpu:.0f} %",
        f"{10 * fast.cpu / fast.fps:.1f} ms",
    )
    section.stand(
        "720p 30 fps, motion and faces: CPU",
        f"{live.cpu:.0f} % at {live.fps:.1f} fps",
        f"baseline producer {base_cpu:.0f} % at {base_fps:.2f} fps",
        f"{times(ratio(live.fps, base_fps))} the baseline's fps",
        "≤ 35 % of a core",
        verdict(live.cpu <= 35 and live.fps >= 29),
    )
    photo = codec_data["photo 1280x720"]
    section.notes.append(
        "the test pattern is flat colour, which flatters PNG; on the photograph PNG is "
        f"{times(photo['png'][1] / photo['jpeg'][1])} the JPEG's size, which is what a camera "
        "would put through the baseline's Kafka"
    )
    section.data = {
        "runs": {f"{w}x{h}": [vars(r) for r in pair] for (w, h), pair in runs.items()},
        "codec": codec_data,
        "baseline": {"fps": base_fps, "cpu": base_cpu},
    }
    return section
