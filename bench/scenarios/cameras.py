"""Real cameras: capture's CPU decoding H.264 from GStreamer's RTSP server at 720p and
1080p, 15 and 30 fps, with and without detection, beside the same clip read as a file;
and the latency a frame adds from the RTSP server to a viewer of the gateway."""

from __future__ import annotations

import http.client
import statistics
import time
from typing import Any

import cv2
import numpy as np
from rts_devstack.cameras import RtspCamera, read_marker, write_clip

from bench.context import Bench, Section, ms
from bench.machine import CpuMeter
from bench.processes import capture, fresh_topics, gateway, metrics, running

TITLE = "Real cameras: H.264 over RTSP, decode cost and latency"
SIZES = {"720p": (1280, 720), "1080p": (1920, 1080)}
DETECTION = ["--face-every", 5]  # the service's defaults: motion every frame, faces every 5th
NO_DETECTION = ["--no-motion", "--no-faces"]
PEOPLE = ["--no-faces", "--people"]  # motion every frame, people every 10th (HOG)


def measure(
    bench: Bench, prefix: str, source: list[Any], label: str, seconds: float, warmup: float
) -> tuple[float, float]:
    """fps published and CPU (% of one core) of one capture process reading `source`."""
    proc, port = capture(bench.logs, bench.kafka, prefix, "bench-camera", *source)
    with running(proc):
        time.sleep(warmup)  # the stream opens, FFmpeg probes it, the first frames burst
        with bench.span(label):
            before, meter, t0 = metrics(port), CpuMeter(proc.pid), time.monotonic()
            time.sleep(seconds)
            after, cpu, wall = metrics(port), meter.percent(), time.monotonic() - t0
        proc.check()
    fps = (after.get("capture_frames_total", 0) - before.get("capture_frames_total", 0)) / wall
    return fps, cpu


def viewer_latency(
    port: int, camera: str, seconds: float, sent: RtspCamera | None, fps: float
) -> tuple[list[float], list[float]]:
    """From one MJPEG viewer of the gateway: capture time → receipt (ms) per frame, and
    with `sent`, the RTSP server's send time → receipt (ms), matched by frame number."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("GET", f"/stream/{camera}")
    response = conn.getresponse()
    from_capture: list[float] = []
    received: list[tuple[int | None, int]] = []
    deadline = time.monotonic() + seconds
    try:
        while time.monotonic() < deadline:
            headers: dict[str, str] = {}
            line = response.fp.readline()
            while line not in (b"\r\n", b""):
                name, _, value = line.decode("latin-1").partition(":")
                headers[name.strip().lower()] = value.strip()
                line = response.fp.readline()
            if "content-length" not in headers:
                continue
            jpeg = response.fp.read(int(headers["content-length"]))
            now = time.time_ns()
            from_capture.append((now - int(headers["x-frame-timestamp"])) / 1e6)
            if sent is not None:
                image = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
                received.append((None if image is None else read_marker(image), now))
    finally:
        conn.close()
    from_server: list[float] = []
    if sent is not None:
        at = sent.sent_at(fps)
        from_server = [(now - at[n]) / 1e6 for n, now in received if n is not None and n in at]
    return from_capture, from_server


def run(bench: Bench) -> Section:
    sizes = bench.pick(["720p"], list(SIZES))
    rates = bench.pick([15], [15, 30])
    seconds = bench.pick(4, 10)
    warmup = bench.pick(3.0, 4.0)
    clip_seconds = warmup + seconds + 10
    section = Section(
        "cameras",
        TITLE,
        f"""
A clip of moving gradients with a numbered marker, encoded once per size and rate by
ffmpeg (libx264 ultrafast, a keyframe a second, no B-frames, as cameras send), served by
GStreamer's RTSP server (`rts_devstack.cameras`, RTP over TCP, paced in real time, no
re-encoding), read by one `capture` process with its defaults (frames wider than 1280
scaled down, JPEG quality 80) for {seconds} s after a {warmup:g} s warm-up: with the
service's detection (motion every frame, faces every 5th), with people instead of faces
(`--people`: OpenCV's HOG every 10th frame), and without detection. The same-run
reference: the same clip read as a file (`--source clip.mp4 --loop`, paced at its own
rate), so the difference is what RTSP and the network stack add to decoding. Latency:
one viewer of the gateway's `/stream/<camera>`, 720p at 15 fps without detection; the
server says when each frame leaves (a probe on its payloader), the viewer reads each
frame's number from the picture.
""",
    )
    clips = bench.out / "logs" / "clips"
    prefix = fresh_topics(bench.kafka)
    table = section.table(
        "capture's CPU per camera (% of one core) and fps published; RTSP against the same "
        "clip as a file",
        "stream",
        "detection",
        "RTSP fps",
        "RTSP CPU",
        "file fps",
        "file CPU",
        "RTSP / file CPU",
    )
    for name in sizes:
        size = SIZES[name]
        for rate in rates:
            clip = write_clip(
                clips / f"{name}-{rate}.mp4", frames=int(rate * clip_seconds), fps=rate, size=size
            )
            for detect, args in (("on", DETECTION), ("people", PEOPLE), ("off", NO_DETECTION)):
                label = f"{name} {rate} fps, detection {detect}"
                with RtspCamera(clip) as camera:
                    rtsp = measure(
                        bench,
                        prefix,
                        ["--source", camera.url(), *args],
                        f"{label} RTSP",
                        seconds,
                        warmup,
                    )
                local = measure(
                    bench,
                    prefix,
                    ["--source", clip, "--loop", *args],
                    f"{label} file",
                    seconds,
                    warmup,
                )
                table.add(
                    f"H.264 {name} {rate} fps",
                    detect,
                    f"{rtsp[0]:.1f}",
                    f"{rtsp[1]:.0f} %",
                    f"{local[0]:.1f}",
                    f"{local[1]:.0f} %",
                    f"{rtsp[1] / local[1]:.2f}" if local[1] else "-",
                )
                print(
                    f"  {label}: RTSP {rtsp[0]:.1f} fps {rtsp[1]:.0f} % CPU; file "
                    f"{local[0]:.1f} fps {local[1]:.0f} % CPU",
                    flush=True,
                )

    clip = write_clip(
        clips / "latency.mp4", frames=int(15 * (clip_seconds + 10)), fps=15, size=SIZES["720p"]
    )
    server, port = gateway(bench.logs, bench.kafka, prefix, "eventlet", name="gateway-cameras")
    lat = section.table(
        "Latency to one viewer of the gateway (ms), 720p 15 fps, detection off",
        "source",
        "leg",
        "p50",
        "p95",
        "frames",
    )
    with running(server):
        with RtspCamera(clip, report_sent=True) as camera:
            proc, _ = capture(
                bench.logs,
                bench.kafka,
                prefix,
                "bench-rtsp",
                *["--source", camera.url(), *NO_DETECTION],
            )
            with running(proc):
                time.sleep(warmup)
                with bench.span("latency RTSP"):
                    from_capture, from_server = viewer_latency(
                        port, "bench-rtsp", seconds, camera, 15
                    )
        file_proc, _ = capture(
            bench.logs,
            bench.kafka,
            prefix,
            "bench-file",
            *["--source", clip, "--loop", *NO_DETECTION],
        )
        with running(file_proc):
            time.sleep(warmup)
            with bench.span("latency file"):
                file_capture, _ = viewer_latency(port, "bench-file", seconds, None, 15)
    for source, leg, values in (
        ("RTSP", "server sent → viewer", from_server),
        ("RTSP", "capture → viewer", from_capture),
        ("file", "capture → viewer", file_capture),
    ):
        if values:
            q = statistics.quantiles(values, n=20) if len(values) > 1 else [values[0]] * 19
            lat.add(source, leg, ms(statistics.median(values)), ms(q[18]), len(values))
            print(f"  latency {source} {leg}: p50 {statistics.median(values):.0f} ms", flush=True)
    return section
