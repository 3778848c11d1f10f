"""Faces: OpenCV's frontal-face Haar cascade, from the cascades opencv-python-headless ships."""

from __future__ import annotations

from pathlib import Path
from typing import cast

import cv2

from rts_capture.detect import Box, Detector, DetectorError, Found
from rts_capture.sources import Image

# opencv-python-headless 4.x ships the cascades in cv2.data; 5.0 dropped them, which is
# why the package pins opencv to the 4.x line.
CASCADE = "haarcascade_frontalface_default.xml"


def cascade_path() -> Path:
    return Path(cv2.data.haarcascades) / CASCADE  # type: ignore[attr-defined]  # not in the stubs


class FaceDetector(Detector):
    kind = "face"

    def __init__(
        self,
        every: int = 5,
        width: int = 640,
        min_size: int = 32,
        scale_factor: float = 1.1,
        min_neighbors: int = 5,
    ) -> None:
        self.every = every
        self.width = width
        self.min_size = min_size
        self.scale_factor = scale_factor
        self.min_neighbors = min_neighbors
        path = cascade_path()
        self._cascade = cv2.CascadeClassifier(str(path))
        if self._cascade.empty():
            raise DetectorError(
                f"the face cascade {path} is missing or unreadable (opencv-python-headless "
                "4.x ships it; pass --no-faces to run without face detection)"
            )

    def detect(self, image: Image) -> Found:
        height, width = image.shape[:2]
        # The cascade's cost grows with the pixel count; faces stay findable at 640 px.
        scale = min(1.0, self.width / width)
        if scale < 1:
            size = (round(width * scale), round(height * scale))
            image = cast(Image, cv2.resize(image, size, interpolation=cv2.INTER_AREA))
        grey = cv2.equalizeHist(cv2.cvtColor(image, cv2.COLOR_BGR2GRAY))
        rects, _levels, weights = self._cascade.detectMultiScale3(
            grey,
            scaleFactor=self.scale_factor,
            minNeighbors=self.min_neighbors,
            minSize=(self.min_size, self.min_size),
            outputRejectLevels=True,
        )
        if len(rects) == 0:
            return Found()
        boxes: list[Box] = [
            (round(x / scale), round(y / scale), round(w / scale), round(h / scale))
            for x, y, w, h in rects
        ]
        # The last stage's weight: higher means the cascade is surer.
        return Found(boxes, round(max(0.0, float(max(weights))), 3))
