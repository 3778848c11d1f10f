"""Detectors behind one small interface, one module per algorithm, and the thread running them.

A detector looks at a frame as it was sent (scaled, BGR) and returns boxes in that
frame's pixels; the detections carry the frame size so a browser can scale them onto
the stream it shows.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field

from rts_common.contracts import DetectionKind

from rts_capture.sources import Image

Box = tuple[int, int, int, int]  # x, y, w, h


class DetectorError(RuntimeError):
    """A detector that cannot start (its model file is missing or unreadable)."""


@dataclass(frozen=True)
class Found:
    boxes: list[Box] = field(default_factory=list)
    score: float = 0.0


class Detector(ABC):
    kind: DetectionKind
    every: int = 1  # run on every Nth frame the detectors get

    @abstractmethod
    def detect(self, image: Image) -> Found:
        """Boxes of what was found in `image`, in its pixels; no boxes when nothing was."""
