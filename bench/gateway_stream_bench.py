"""Gateway MJPEG benchmark: frame latency and delivered fps for 1, 10 and 100 viewers of a
720p 15 fps camera, per async mode, with the gateway's CPU and memory; and the same for
the baseline's way (a Kafka consumer per viewer) measured in the same run.

Everything is real: a broker on free ports, the `capture` test pattern, the gateway under
gunicorn, and viewers reading MJPEG over HTTP from asyncio in this process (their
latency is the time a part is fully received minus its capture time; one machine, one
clock).

    .venv/bin/python bench/gateway_stream_bench.py [--seconds 10] [--viewers 1,10,100]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from rts_common.net import free_ports
from support import cpu_seconds, fresh_topics, local_broker, percentile, rss_bytes

BIN = Path(sys.executable).parent
ROOT = Path(__file__).resolve().parents[1]
CAMERA = "bench-cam"


@dataclass
class Result:
    server: str
    viewers: int
    fps: float  # mean delivered frames/s per viewer
    p50_ms: float
    p99_ms: float
    cpu_percent: float  # of one core
    rss_mb: float


async def viewer(port: int, path: str, until: float, latencies: list[float]) -> int:
    """Read one MJPEG stream until `until`; returns the frames received."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    # HTTP/1.0: the server streams the body as is (no chunked encoding) and closes at the end.
    writer.write(f"GET {path} HTTP/1.0\r\nHost: bench\r\n\r\n".encode())
    await reader.readuntil(b"\r\n\r\n")
    frames = 0
    try:
        while time.time() < until:
            line = await asyncio.wait_for(reader.readuntil(b"\r\n"), 10)
            if line.strip() != b"--frame":
                continue
            head = await reader.readuntil(b"\r\n\r\n")
            fields = dict(h.split(": ", 1) for h in head.decode().strip().split("\r\n"))
            await reader.readexactly(int(fields["Content-Length"]) + 2)
            latencies.append(time.time() - int(fields["X-Frame-Timestamp"]) / 1e9)
            frames += 1
    finally:
        writer.close()
    return frames


async def watch(port: int, path: str, count: int, seconds: float) -> tuple[list[int], list[float]]:
    latencies: list[float] = []
    warm_until = time.time() + 2.0  # let every viewer get going before measuring
    warm = [asyncio.create_task(viewer(port, path, warm_until, [])) for _ in range(count)]
    await asyncio.gather(*warm)
    until = time.time() + seconds
    counts = await asyncio.gather(*[viewer(port, path, until, latencies) for _ in range(count)])
    return list(counts), latencies


def wait_ready(url: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.3)
    raise SystemExit(f"{url} not ready in {timeout}s")


def measure(server: str, proc: subprocess.Popen[bytes], port: int, path: str, count: int,
            seconds: float) -> Result:  # fmt: skip
    cpu_before, wall_before = cpu_seconds(proc.pid), time.monotonic()
    rss_peak = 0

    async def run() -> tuple[list[int], list[float]]:
        nonlocal rss_peak
        task = asyncio.create_task(watch(port, path, count, seconds))
        while not task.done():
            rss_peak = max(rss_peak, rss_bytes(proc.pid))
            await asyncio.sleep(0.5)
        return await task

    counts, latencies = asyncio.run(run())
    elapsed = time.monotonic() - wall_before
    cpu = (cpu_seconds(proc.pid) - cpu_before) / elapsed * 100
    return Result(server, count, sum(counts) / count / seconds, percentile(latencies, 0.5) * 1000,
                  percentile(latencies, 0.99) * 1000, cpu, rss_peak / 2**20)  # fmt: skip


def start(argv: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(argv, env={**os.environ, **env}, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, cwd=ROOT)  # fmt: skip


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        proc.kill()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--viewers", default="1,10,100")
    parser.add_argument("--servers", default="eventlet,threading,baseline")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    levels = [int(v) for v in args.viewers.split(",")]
    results: list[Result] = []
    with local_broker() as kafka:
        prefix = fresh_topics(kafka)
        env = {"KAFKA_BOOTSTRAP": kafka.bootstrap, "KAFKA_TOPIC_PREFIX": prefix,
               "LOG_LEVEL": "warning"}  # fmt: skip
        capture = start([str(BIN / "capture"), "--source", "test", "--camera-id", CAMERA,
                         "--fps", "15", "--test-width", "1280", "--test-height", "720",
                         "--no-motion", "--no-faces", "--ops-port", str(free_ports(1)[0])],
                        env)  # fmt: skip
        try:
            for server in args.servers.split(","):
                port = free_ports(1)[0]
                if server == "baseline":
                    argv = [str(BIN / "gunicorn"), "-k", "gthread", "--threads", "256", "-b",
                            f"127.0.0.1:{port}", "--chdir", str(ROOT / "bench"),
                            "baseline_mjpeg_app:app"]  # fmt: skip
                    proc = start(argv, {**env, "FRAMES_TOPIC": prefix + "video-frames"})
                    path, ready = f"/kaf/{CAMERA}", f"http://127.0.0.1:{port}/kaf/none"
                    time.sleep(3)
                else:
                    ops = free_ports(1)[0]
                    proc = start([str(BIN / "gateway"), "--port", str(port), "--ops-port",
                                  str(ops), "--async-mode", server], env)  # fmt: skip
                    path, ready = f"/stream/{CAMERA}", f"http://127.0.0.1:{ops}/readyz"
                    wait_ready(ready)
                    wait_ready(f"http://127.0.0.1:{port}/snapshot/{CAMERA}.jpg")
                try:
                    for count in levels:
                        result = measure(server, proc, port, path, count, args.seconds)
                        results.append(result)
                        print(f"{server:9} {count:4} viewers: {result.fps:5.1f} fps/viewer, "
                              f"latency p50 {result.p50_ms:6.1f} ms p99 {result.p99_ms:7.1f} ms, "
                              f"CPU {result.cpu_percent:5.1f} %, RSS {result.rss_mb:6.1f} MB",
                              flush=True)  # fmt: skip
                finally:
                    stop(proc)
        finally:
            stop(capture)
    if args.json:
        args.json.write_text(json.dumps([r.__dict__ for r in results], indent=2))


if __name__ == "__main__":
    main()
