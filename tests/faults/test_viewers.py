"""Slow and stalled viewers for minutes: nobody queues video for them, the fast viewers keep
their frame rate, the stalled ones are let go, and memory stays flat."""

from __future__ import annotations

import os
import threading
import time

import pytest

from tests.faults.conftest import MakeStack, fresh_frame_age
from tests.fixtures.mjpeg import MjpegClient, Part

CAMERA = "cam-viewers"
FPS = 10
MINUTES = float(os.environ.get("VIEWERS_MINUTES", "2"))


class Reader(threading.Thread):
    """Reads parts at full speed, or throttled to `bytes_per_second`."""

    def __init__(self, url: str, bytes_per_second: int | None = None) -> None:
        super().__init__(daemon=True)
        self.client = MjpegClient(url, rcvbuf=8192 if bytes_per_second else None, timeout=30)
        self.rate = bytes_per_second
        self.parts: list[Part] = []
        self.ended: BaseException | None = None
        self.stop = threading.Event()

    def run(self) -> None:
        try:
            while not self.stop.is_set():
                part = self.client.part()
                self.parts.append(part)
                if self.rate:
                    time.sleep(len(part.jpeg) / self.rate)
        except (EOFError, OSError) as exc:
            self.ended = exc

    def delivered_share(self) -> float:
        """Frames received over frames the camera made meanwhile (by their seq numbers)."""
        seqs = [int(p.headers["X-Frame-Seq"]) for p in self.parts[5:]]
        return (len(seqs) - 1) / max(1, seqs[-1] - seqs[0]) if len(seqs) > 1 else 0.0


@pytest.mark.timeout(900)
def test_slow_and_stalled_viewers_cost_no_memory_and_never_slow_the_others(
    make_stack: MakeStack,
) -> None:
    stack = make_stack()
    camera = stack.camera(CAMERA, fps=FPS)
    camera.wait_ready(timeout=60)
    gateway = stack.gateway("--stall-timeout-seconds", "10", "--stream-send-buffer", "16384")
    gateway.wait_ready(timeout=60)
    gateway.wait_for(lambda: fresh_frame_age(gateway, CAMERA) < 2.0, 60, "a live frame")
    url = f"{gateway.url}/stream/{CAMERA}"
    fast = [Reader(url) for _ in range(3)]
    slow = [Reader(url, bytes_per_second=20_000) for _ in range(3)]
    for reader in (*fast, *slow):
        reader.start()
    stalled = [MjpegClient(url, rcvbuf=2048) for _ in range(3)]  # never read after the head
    time.sleep(15)
    baseline = gateway.rss_bytes()
    samples = []
    end = time.monotonic() + MINUTES * 60
    while time.monotonic() < end:
        samples.append(gateway.rss_bytes())
        time.sleep(5)
    growth = (max(samples) - baseline) / 1e6
    frame_kb = sum(len(p.jpeg) for p in fast[0].parts[-20:]) / 20 / 1e3
    dropped = gateway.metric("gateway_viewers_dropped_total", reason="stalled")
    shares = [round(r.delivered_share(), 3) for r in fast]
    slow_fps = [round(len(r.parts) / (MINUTES * 60 + 15), 2) for r in slow]
    print(
        f"{MINUTES:g} min: RSS {baseline / 1e6:.0f} MB at the start, +{growth:.1f} MB at most;"
        f" frames ~{frame_kb:.0f} KB; fast viewers got {shares} of the frames; slow viewers "
        f"{slow_fps} fps; stalled viewers dropped: {dropped:.0f}"
    )
    for reader in (*fast, *slow):
        reader.stop.set()
    assert all(share >= 0.9 for share in shares), shares
    assert all(r.ended is None for r in (*fast, *slow)), [r.ended for r in (*fast, *slow)]
    assert all(len(r.parts) > 10 for r in slow)  # slow, not starved
    assert dropped >= 3
    for client in stalled:  # the gateway closed them
        with pytest.raises((EOFError, OSError)):
            client.parts_for(60.0)
        client.close()
    # Per viewer at most one frame held in the gateway plus its socket buffer: no queue.
    bound = 9 * (frame_kb / 1e3 + 0.064) + 15
    assert growth < bound, f"RSS grew {growth:.1f} MB (bound {bound:.1f} MB)"
    assert gateway.running
