"""People: OpenCV's built-in HOG + linear SVM pedestrian detector (Dalal and Triggs).

It ships inside OpenCV (`HOGDescriptor.getDefaultPeopleDetector`): no model file to
download or licence to track. It finds upright, walking or standing people of 64x128
pixels and up at the scaled width; it is costlier than the face cascade, so it runs on
every Nth frame (`--people-every`) at a reduced width (`--people-width`).
"""

from __future__ import annotations

from typing import cast

import cv2
import numpy as np

from rts_capture.detect import Box, Detector, Found
from rts_capture.sources import Image


class PersonDetector(Detector):
    kind = "person"

    def __init__(
        self,
        every: int = 10,
        width: int = 800,
        min_score: float = 0.5,
        scale: float = 1.05,
    ) -> None:
        self.every = every
        self.width = width
        self.min_score = min_score
        self.scale = scale
        self._hog = cv2.HOGDescriptor()
        self._hog.setSVMDetector(
            np.asarray(cv2.HOGDescriptor.getDefaultPeopleDetector(), np.float32)
        )

    def detect(self, image: Image) -> Found:
        height, width = image.shape[:2]
        factor = min(1.0, self.width / width)
        if factor < 1:
            size = (round(width * factor), round(height * factor))
            image = cast(Image, cv2.resize(image, size, interpolation=cv2.INTER_AREA))
        rects, weights = self._hog.detectMultiScale(
            image, winStride=(8, 8), padding=(8, 8), scale=self.scale
        )
        if len(rects) == 0:
            return Found()
        scores = np.asarray(weights, np.float32).reshape(-1)
        keep = cv2.dnn.NMSBoxes(
            [list(map(int, r)) for r in rects], scores.tolist(), self.min_score, 0.4
        )
        chosen = [int(i) for i in np.asarray(keep).reshape(-1)]
        if not chosen:
            return Found()
        boxes: list[Box] = []
        for i in chosen:
            x, y, w, h = (round(float(v) / factor) for v in rects[i])
            boxes.append((x, y, w, h))
        return Found(boxes, round(float(max(scores[i] for i in chosen)), 3))
