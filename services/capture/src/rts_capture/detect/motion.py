"""Motion: difference against a running average of small, blurred grey frames."""

from __future__ import annotations

import cv2
import numpy as np
import numpy.typing as npt

from rts_capture.detect import Box, Detector, Found
from rts_capture.sources import Image

# A handful of boxes tells a viewer where things move; hundreds would only flood the topic.
MAX_BOXES = 16
# Pieces of motion closer than this fraction of the frame width are one moving thing.
MERGE_GAP = 0.05


class MotionDetector(Detector):
    kind = "motion"

    def __init__(
        self,
        width: int = 320,
        threshold: int = 25,
        min_area: float = 0.002,
        adapt: float = 0.2,
    ) -> None:
        self.width = width
        self.threshold = threshold
        self.min_area = min_area
        # How fast the background follows the scene: high enough that lighting changes
        # and stopped objects fade within a few frames, low enough that slow movers show.
        self.adapt = adapt
        self._background: npt.NDArray[np.float32] | None = None

    def detect(self, image: Image) -> Found:
        height, width = image.shape[:2]
        scale = min(1.0, self.width / width)
        small = (
            cv2.resize(
                image, (round(width * scale), round(height * scale)), interpolation=cv2.INTER_AREA
            )
            if scale < 1
            else image
        )
        grey = cv2.cvtColor(small, cv2.COLOR_BGR2GRAY)
        # Blurring first keeps sensor noise and JPEG artefacts from counting as motion.
        grey = cv2.GaussianBlur(grey, (5, 5), 0)
        if self._background is None or self._background.shape != grey.shape:
            self._background = grey.astype(np.float32)
            return Found()
        diff = cv2.absdiff(grey, cv2.convertScaleAbs(self._background))
        cv2.accumulateWeighted(grey, self._background, self.adapt)
        _, mask = cv2.threshold(diff, self.threshold, 255, cv2.THRESH_BINARY)
        # A moving object rarely differs from the background everywhere (a plain-coloured
        # shape changes only at its leading and trailing edges): closing the gaps between
        # nearby pieces gives one region, and one box, per moving thing.
        gap = max(3, round(MERGE_GAP * grey.shape[1]))
        kernel = cv2.getStructuringElement(cv2.MORPH_RECT, (gap, gap))
        mask = cv2.morphologyEx(mask, cv2.MORPH_CLOSE, kernel)
        contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        area = grey.shape[0] * grey.shape[1]
        smallest = self.min_area * area
        regions = sorted(
            ((cv2.contourArea(c), cv2.boundingRect(c)) for c in contours), reverse=True
        )
        boxes: list[Box] = [
            (round(x / scale), round(y / scale), round(w / scale), round(h / scale))
            for size, (x, y, w, h) in regions[:MAX_BOXES]
            if size >= smallest
        ]
        if not boxes:
            return Found()
        moving = float(np.count_nonzero(mask)) / area
        return Found(boxes, round(moving, 4))
