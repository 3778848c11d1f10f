"""Stand-ins for sources and clocks, and metric reading, shared by capture's unit tests."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from rts_capture.metrics import CaptureMetrics
from rts_capture.sources import Image, Source


class FakeSource(Source):
    """`count` tiny frames numbered in their first pixel, then None (end or failure)."""

    kind = "fake"

    def __init__(
        self,
        count: int,
        *,
        finite: bool = True,
        fps: float | None = 500.0,
        hang_after: int | None = None,
    ) -> None:
        self.count = count
        self.finite = finite
        self.paced = fps is not None
        self.fps = fps
        self.hang_after = hang_after
        self.released = threading.Event()
        self.unblock = threading.Event()
        self.read_count = 0
        self.closed = False

    def read(self) -> Image | None:
        if self.hang_after is not None and self.read_count >= self.hang_after:
            self.unblock.wait(30)
            return None
        if self.read_count >= self.count:
            return None
        self.read_count += 1
        return np.full((4, 4, 3), self.read_count % 256, np.uint8)

    def close(self) -> None:
        self.closed = True


def sample(metrics: CaptureMetrics, name: str, **labels: str) -> float:
    value = metrics.registry.get_sample_value(name, {"camera": "cam", **labels})
    return 0.0 if value is None else value


@pytest.fixture
def metrics() -> CaptureMetrics:
    return CaptureMetrics("cam")
