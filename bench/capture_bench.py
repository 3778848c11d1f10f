"""Capture benchmark: sustained fps and CPU per camera, JPEG cost, and the baseline's PNG.

Runs the real `capture` process on the test pattern against a real Kafka broker (its
own, on free ports, unless KAFKA_BOOTSTRAP is set) at 640x480, 1280x720 and 1920x1080:

- "30 fps": the default service (motion every frame, faces every 5th) asked for 30 fps;
  what it sustains and the CPU it takes, in % of one core.
- "max": detection off and --fps 120, the most one process sends.

Then, in this process on the same test frames, the JPEG encode (quality 80) against the
baseline's PNG encode (cv2.imencode(".png", frame), as the baseline article does), also
on a photograph at 720p, and the baseline's rate: one frame per PNG encode plus its
fixed 0.2 s sleep.

    .venv/bin/python bench/capture_bench.py [--seconds 10]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path

import cv2
from prometheus_client.parser import text_string_to_metric_families
from rts_capture.sources.pattern import TestPattern
from rts_common.contracts import TOPICS
from rts_common.kafka import admin_client, ensure_topics
from rts_common.net import free_ports
from rts_devstack.broker import LocalKafka
from skimage import data
from support import cpu_seconds

SIZES = ((640, 480), (1280, 720), (1920, 1080))
BASELINE_SLEEP = 0.2  # the baseline article's fixed pause between frames


def scrape(port: int) -> dict[str, float]:
    """Sums of every sample of /metrics by name (one camera per process)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    values: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            key = s.name
            if "reason" in s.labels:
                key = f"{s.name}:{s.labels['reason']}"
            elif "kind" in s.labels:
                key = f"{s.name}:{s.labels['kind']}"
            values[key] = values.get(key, 0.0) + float(s.value)
    return values


@dataclass
class Run:
    fps: float
    cpu: float  # % of one core
    encode_ms: float
    frame_kib: float
    dropped: float
    detect_ms: dict[str, float]


def run_capture(
    bootstrap: str, prefix: str, size: tuple[int, int], args: list[str], seconds: float
) -> Run:
    port = free_ports(1)[0]
    width, height = size
    env = {**os.environ, "KAFKA_BOOTSTRAP": bootstrap, "KAFKA_TOPIC_PREFIX": prefix,
           "CAPTURE_OPS_PORT": str(port), "CAPTURE_OPS_HOST": "127.0.0.1",
           "LOG_LEVEL": "warning"}  # fmt: skip
    argv = [sys.executable, "-m", "rts_capture", "--source", "test", "--camera-id",
            f"bench-{width}x{height}", "--test-width", str(width), "--test-height", str(height),
            "--max-width", "0", *args]  # fmt: skip
    proc = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                scrape(port)
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError("capture did not start") from None
                time.sleep(0.2)
        time.sleep(2.0)  # warm-up: imports, first connections, the cascade's first runs
        before, cpu0, t0 = scrape(port), cpu_seconds(proc.pid), time.monotonic()
        time.sleep(seconds)
        after, cpu1, t1 = scrape(port), cpu_seconds(proc.pid), time.monotonic()
    finally:
        proc.terminate()
        proc.wait(15)

    def delta(name: str) -> float:
        return after.get(name, 0.0) - before.get(name, 0.0)

    def mean(name: str) -> float:
        count = delta(f"{name}_count")
        return delta(f"{name}_sum") / count if count else 0.0

    wall = t1 - t0
    dropped = sum(delta(k) for k in after if k.startswith("capture_frames_dropped_total:"))
    detect = {}
    for kind in ("motion", "face"):
        count = delta(f"capture_detect_seconds_count:{kind}")
        if count:
            detect[kind] = 1000 * delta(f"capture_detect_seconds_sum:{kind}") / count
    return Run(
        fps=delta("capture_frames_total") / wall,
        cpu=100 * (cpu1 - cpu0) / wall,
        encode_ms=1000 * mean("capture_encode_seconds"),
        frame_kib=mean("capture_frame_bytes") / 1024,
        dropped=dropped / wall,
        detect_ms=detect,
    )


def encode_cost(image: object, ext: str, params: list[int], repeat: int) -> tuple[float, int]:
    """Median ms of one encode, and the encoded size."""
    times, size = [], 0
    for _ in range(repeat):
        started = time.perf_counter()
        ok, buffer = cv2.imencode(ext, image, params)
        times.append(time.perf_counter() - started)
        assert ok
        size = len(buffer)
    return 1000 * statistics.median(times), size


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="measured time per run")
    args = parser.parse_args()

    external = os.environ.get("KAFKA_BOOTSTRAP")
    workdir = Path(tempfile.mkdtemp(prefix="capture-bench-"))
    broker = None
    if external:
        bootstrap = external
    else:
        ports = free_ports(2)
        broker = LocalKafka(workdir, ports=ports[:1], controller_ports=ports[1:]).start()
        bootstrap = broker.bootstrap
    prefix = f"bench{uuid.uuid4().hex[:8]}."
    ensure_topics(admin_client({"bootstrap.servers": bootstrap}), TOPICS, local=True, prefix=prefix)
    print(f"capture benchmark: {os.cpu_count()} CPUs, {args.seconds:g} s per run, "
          f"OpenCV {cv2.__version__}, broker {bootstrap}\n")  # fmt: skip
    try:
        print("per camera (one capture process), test pattern, JPEG quality 80, no scaling")
        header = (f"{'size':>10} | {'30 fps: fps':>11} {'CPU %':>6} {'motion ms':>9} "
                  f"{'face ms':>8} | {'max: fps':>8} {'CPU %':>6} {'encode ms':>9} "
                  f"{'KiB':>6}")  # fmt: skip
        print(header)
        print("-" * len(header))
        sustained = {}
        for size in SIZES:
            live = run_capture(bootstrap, prefix, size, ["--fps", "30"], args.seconds)
            fast = run_capture(
                bootstrap, prefix, size, ["--fps", "120", "--no-motion", "--no-faces"],
                args.seconds,
            )  # fmt: skip
            motion, face = live.detect_ms.get("motion", 0), live.detect_ms.get("face", 0)
            print(f"{size[0]:>5}x{size[1]:<4} | {live.fps:>11.1f} {live.cpu:>6.0f} "
                  f"{motion:>9.1f} {face:>8.1f} | {fast.fps:>8.1f} {fast.cpu:>6.0f} "
                  f"{fast.encode_ms:>9.2f} {fast.frame_kib:>6.1f}")  # fmt: skip
            sustained[size] = (live.fps, fast.fps)
    finally:
        if broker is not None:
            broker.stop()
        shutil.rmtree(workdir, ignore_errors=True)

    print("\ncodec, in-process, one thread of this process (median of 30 encodes)")
    header = f"{'frame':>16} | {'JPEG ms':>8} {'JPEG KiB':>9} | {'PNG ms':>8} {'PNG KiB':>8}"
    print(header)
    print("-" * len(header))
    cv2.setNumThreads(1)
    frames = {f"test {w}x{h}": TestPattern(w, h, 30).render(90, time.time_ns()) for w, h in SIZES}
    # Flat synthetic colours flatter PNG; a photograph is what cameras see.
    photo = cv2.resize(data.astronaut()[:, :, ::-1], (1280, 720), interpolation=cv2.INTER_CUBIC)
    frames["photo 1280x720"] = photo
    results = {}
    for name, frame in frames.items():
        jpeg = encode_cost(frame, ".jpg", [cv2.IMWRITE_JPEG_QUALITY, 80], 30)
        png = encode_cost(frame, ".png", [], 30)
        results[name] = (jpeg, png)
        print(f"{name:>16} | {jpeg[0]:>8.2f} {jpeg[1] / 1024:>9.1f} | "
              f"{png[0]:>8.2f} {png[1] / 1024:>8.1f}")  # fmt: skip
    print()
    for name in ("test 1280x720", "photo 1280x720"):
        (jpeg_ms, jpeg_bytes), (png_ms, png_bytes) = results[name]
        print(f"{name}: JPEG encodes {png_ms / jpeg_ms:.1f}x faster than the baseline's PNG "
              f"and is {png_bytes / jpeg_bytes:.1f}x smaller")  # fmt: skip
    png_ms = results["test 1280x720"][1][0]
    baseline_fps = 1 / (BASELINE_SLEEP + png_ms / 1000)
    print(f"baseline rate at 720p: 1 / (0.2 s sleep + {png_ms:.1f} ms PNG) = "
          f"{baseline_fps:.2f} fps")  # fmt: skip
    live_fps, max_fps = sustained[(1280, 720)]
    print(f"capture at 720p: {live_fps:.1f} fps with detection ({live_fps / baseline_fps:.0f}x "
          f"the baseline), {max_fps:.1f} fps at most ({max_fps / baseline_fps:.0f}x)")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
