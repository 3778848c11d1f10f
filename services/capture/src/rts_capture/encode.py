"""Scaling and JPEG encoding, kept under the topic's message size."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import cast

import cv2
from rts_common.contracts import FRAME_PAYLOAD_LIMIT

from rts_capture.sources import Image

# Below this quality JPEG blocks show; shrinking the frame is the better trade then.
MIN_QUALITY = 40
QUALITY_STEP = 15
SHRINK = 0.75
MIN_WIDTH = 64


class EncodeError(RuntimeError):
    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason  # a bounded metric label: too_large, encode_error


@dataclass(frozen=True, slots=True)
class Encoded:
    jpeg: bytes
    image: Image  # the frame as sent (scaled), which the detectors look at

    @property
    def width(self) -> int:
        return int(self.image.shape[1])

    @property
    def height(self) -> int:
        return int(self.image.shape[0])


def scale_to_width(image: Image, max_width: int) -> Image:
    height, width = image.shape[:2]
    if not max_width or width <= max_width:
        return image
    size = (max_width, max(1, round(height * max_width / width)))
    return cast(Image, cv2.resize(image, size, interpolation=cv2.INTER_AREA))


class JpegEncoder:
    def __init__(
        self,
        quality: int,
        max_width: int = 0,
        limit: int = FRAME_PAYLOAD_LIMIT,
        on_reduced: Callable[[str], None] | None = None,
    ) -> None:
        self.quality = quality
        self.max_width = max_width
        self.limit = limit
        self._on_reduced = on_reduced or (lambda _how: None)

    def encode(self, image: Image) -> Encoded:
        """The frame as JPEG within `limit` bytes: lower quality first, then smaller."""
        image = scale_to_width(image, self.max_width)
        quality = self.quality
        while True:
            jpeg = self._jpeg(image, quality)
            if len(jpeg) <= self.limit:
                return Encoded(jpeg, image)
            if quality > MIN_QUALITY:
                quality = max(MIN_QUALITY, quality - QUALITY_STEP)
                self._on_reduced("quality")
                continue
            width = round(image.shape[1] * SHRINK)
            if width < MIN_WIDTH:
                raise EncodeError("too_large", f"{len(jpeg)} bytes even at {image.shape[1]}px wide")
            image = scale_to_width(image, width)
            self._on_reduced("size")

    @staticmethod
    def _jpeg(image: Image, quality: int) -> bytes:
        ok, buffer = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
        if not ok:
            raise EncodeError("encode_error", f"OpenCV could not encode a {image.shape} frame")
        return bytes(buffer)
