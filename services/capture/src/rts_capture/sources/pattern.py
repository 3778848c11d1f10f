"""The test pattern: a synthetic moving scene that needs no hardware.

Frame `n` depends only on `n`, the frame rate and the clock text, so tests can predict
it. Moving shapes give the motion detector something to find; an optional face image
drifts across the scene for the face detector; the clock and frame counter let a person
see the latency and the dropped frames at a glance.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import cast

import cv2
import numpy as np

from rts_capture.sources import Image, Source, SourceError

_FONT = cv2.FONT_HERSHEY_SIMPLEX
# SMPTE-like bars along the bottom: something static that shows colour and scaling errors.
_BARS = (
    (192, 192, 192),
    (0, 192, 192),
    (192, 192, 0),
    (0, 192, 0),
    (192, 0, 192),
    (0, 0, 192),
    (192, 0, 0),
)


def _triangle(t: float) -> float:
    """0 → 1 → 0 over one unit of t: a bounce without a jump."""
    phase = t % 1.0
    return 2 * phase if phase < 0.5 else 2 - 2 * phase


def load_face(path: Path, height: int) -> Image:
    """The face image scaled to `height` pixels, or SourceError if it cannot be read."""
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise SourceError(f"face image {path} is missing or not an image OpenCV can read")
    scale = height / image.shape[0]
    width = max(1, round(image.shape[1] * scale))
    return cast(Image, cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA))


class TestPattern(Source):
    kind = "test"
    paced = True
    __test__ = False  # not a pytest test class, despite the name

    def __init__(
        self,
        width: int,
        height: int,
        fps: float,
        *,
        label: str = "test",
        face: Image | None = None,
    ) -> None:
        self.width, self.height = width, height
        self.fps = self.rate = fps
        self.label = label
        self.face = face
        self.frame = 0
        self._background = self._draw_background()
        self._scale = height / 480

    def read(self) -> Image | None:
        image = self.render(self.frame, time.time_ns())
        self.frame += 1
        return image

    def render(self, n: int, clock_ns: int) -> Image:
        w, h, s = self.width, self.height, self._scale
        t = n / self.rate
        image = self._background.copy()
        radius = max(4, round(28 * s))
        ball = (
            radius + round(_triangle(t * 0.23) * (w - 2 * radius)),
            radius + round(_triangle(t * 0.31) * (h * 0.8 - 2 * radius)),
        )
        cv2.circle(image, ball, radius, (40, 200, 255), -1, cv2.LINE_AA)
        box = cv2.boxPoints(((w * 0.78, h * 0.3), (h * 0.2, h * 0.2), (t * 90) % 360))
        cv2.fillConvexPoly(image, box.astype(np.int32), (255, 120, 40), cv2.LINE_AA)
        sweep = round(_triangle(t * 0.1) * (w - 1))
        cv2.line(image, (sweep, 0), (sweep, round(h * 0.8)), (255, 255, 255), max(1, round(2 * s)))
        # In front of the shapes: a face the shapes hide would blink in and out of detection.
        if self.face is not None:
            fh, fw = self.face.shape[:2]
            x = round(_triangle(t / 12) * max(0, w - fw))
            y = max(0, (h - fh) // 2 - round(0.05 * h))
            visible = self.face[: h - y, : w - x]
            image[y : y + visible.shape[0], x : x + visible.shape[1]] = visible
        self._text(image, self.label, (round(12 * s), round(34 * s)), 0.9)
        seconds, nanos = divmod(clock_ns, 1_000_000_000)
        clock = time.strftime("%H:%M:%S", time.gmtime(seconds)) + f".{nanos // 1_000_000:03d}Z"
        self._text(image, f"{clock}  #{n:06d}", (round(12 * s), round(h * 0.8 - 14 * s)), 0.8)
        return image

    def _text(self, image: Image, text: str, origin: tuple[int, int], size: float) -> None:
        scale, thick = size * self._scale, max(1, round(2 * self._scale))
        cv2.putText(image, text, origin, _FONT, scale, (0, 0, 0), thick + 3, cv2.LINE_AA)
        cv2.putText(image, text, origin, _FONT, scale, (255, 255, 255), thick, cv2.LINE_AA)

    def _draw_background(self) -> Image:
        w, h = self.width, self.height
        ramp = np.linspace(0.0, 1.0, h, dtype=np.float32)[:, None]
        image = np.empty((h, w, 3), np.uint8)
        image[..., 0] = (70 + 60 * ramp).astype(np.uint8)  # blue
        image[..., 1] = (40 + 50 * ramp).astype(np.uint8)
        image[..., 2] = (30 + 20 * ramp).astype(np.uint8)
        step = max(8, w // 16)
        image[:, ::step] = (90, 90, 90)
        image[::step, :] = (90, 90, 90)
        top = round(h * 0.8)
        for i, colour in enumerate(_BARS):
            x0, x1 = i * w // len(_BARS), (i + 1) * w // len(_BARS)
            image[top:, x0:x1] = colour
        return image
