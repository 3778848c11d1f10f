"""A camera's zones and masks: named polygons over the frame.

A zone labels detections (a detection carries the zones its boxes fall in: a box is in
a zone when its bottom centre is, where a person stands, as NVRs count it); a mask hides
its region from every detector (a clock overlay, a tree in the wind). Points are
fractions of the frame's width and height (0 to 1), so a polygon holds whatever size
the frames are scaled to.

Written as `name=x,y x,y x,y[;name=...]`, e.g. `door=0.1,0.2 0.4,0.2 0.4,0.9 0.1,0.9`;
`parse` refuses a bad one with a message that names it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import cast

import cv2
import numpy as np
from rts_common.contracts import ZONE_NAME

from rts_capture.sources import Image

Point = tuple[float, float]
Box = tuple[int, int, int, int]


class ZoneError(ValueError):
    """A polygon that cannot be used; the message names it and says why."""


@dataclass(frozen=True)
class Zone:
    name: str
    points: tuple[Point, ...]

    def pixels(self, width: int, height: int) -> np.ndarray:
        return np.array([(x * width, y * height) for x, y in self.points], np.float32)

    def contains(self, x: float, y: float, width: int, height: int) -> bool:
        """Whether the pixel (x, y) of a `width` x `height` frame is inside (or on the edge)."""
        return cv2.pointPolygonTest(self.pixels(width, height), (x, y), False) >= 0

    def describe(self) -> str:
        return f"{self.name}=" + " ".join(f"{x:g},{y:g}" for x, y in self.points)


def parse(text: str, what: str = "zone") -> tuple[Zone, ...]:
    """The polygons of `text` (empty: none), or ZoneError naming the bad one."""
    zones: list[Zone] = []
    for part in (p.strip() for p in text.split(";")):
        if not part:
            continue
        name, sep, body = part.partition("=")
        name = name.strip()
        if not sep:
            raise ZoneError(f"{what} {part!r}: write name=x,y x,y x,y (fractions of the frame)")
        if not ZONE_NAME.fullmatch(name):
            raise ZoneError(
                f"{what} name {name!r}: use up to 32 letters, digits, '_' and '-', "
                "starting with a letter or digit"
            )
        if any(z.name == name for z in zones):
            raise ZoneError(f"{what} {name!r} is defined twice")
        zones.append(Zone(name, _points(name, body, what)))
    return tuple(zones)


def _points(name: str, body: str, what: str) -> tuple[Point, ...]:
    points: list[Point] = []
    for raw in body.split():
        try:
            x_text, y_text = raw.split(",")
            x, y = float(x_text), float(y_text)
        except ValueError:
            raise ZoneError(f"{what} {name!r}: point {raw!r} is not x,y") from None
        if not (0.0 <= x <= 1.0 and 0.0 <= y <= 1.0):
            raise ZoneError(
                f"{what} {name!r}: point {raw!r} is outside the frame (x and y are "
                "fractions of its width and height, from 0 to 1)"
            )
        points.append((x, y))
    if len(points) < 3:
        raise ZoneError(f"{what} {name!r}: a polygon needs at least 3 points, got {len(points)}")
    crossing = _self_crossing(points)
    if crossing:
        raise ZoneError(f"{what} {name!r}: its edges cross ({crossing}); list the points in order")
    if abs(cv2.contourArea(np.array(points, np.float32))) < 1e-6:
        raise ZoneError(f"{what} {name!r}: its points enclose no area (a line or a point)")
    return tuple(points)


def _self_crossing(points: Sequence[Point]) -> str:
    """The first two non-adjacent edges that cross, described; empty when none do."""
    edges = [(points[i], points[(i + 1) % len(points)]) for i in range(len(points))]
    for i, (a, b) in enumerate(edges):
        for j in range(i + 2, len(edges)):
            if i == 0 and j == len(edges) - 1:
                continue  # they share the first point
            c, d = edges[j]
            if _cross(a, b, c, d):
                return f"edge {i + 1} and edge {j + 1}"
    return ""


def _cross(a: Point, b: Point, c: Point, d: Point) -> bool:
    def side(p: Point, q: Point, r: Point) -> float:
        return (q[0] - p[0]) * (r[1] - p[1]) - (q[1] - p[1]) * (r[0] - p[0])

    d1, d2 = side(c, d, a), side(c, d, b)
    d3, d4 = side(a, b, c), side(a, b, d)
    return d1 * d2 < 0 and d3 * d4 < 0


def zones_of(zones: Iterable[Zone], boxes: Iterable[Box], width: int, height: int) -> list[str]:
    """The names of the zones any box falls in (its bottom centre), in the zones' order."""
    feet = [(x + w / 2, y + h) for x, y, w, h in boxes]
    return [z.name for z in zones if any(z.contains(fx, fy, width, height) for fx, fy in feet)]


class Masks:
    """Blanks the masked regions of a frame before detection; one filled polygon image
    per frame size, made once."""

    def __init__(self, masks: Sequence[Zone]) -> None:
        self.masks = tuple(masks)
        self._keep: dict[tuple[int, int], Image] = {}

    def __bool__(self) -> bool:
        return bool(self.masks)

    def apply(self, image: Image) -> Image:
        """`image` with the masked regions black (a copy; `image` is left as it is)."""
        if not self.masks:
            return image
        height, width = image.shape[:2]
        keep = self._keep.get((width, height))
        if keep is None:
            keep = np.full((height, width), 255, np.uint8)
            for mask in self.masks:
                cv2.fillPoly(keep, [np.round(mask.pixels(width, height)).astype(np.int32)], 0)
            self._keep[(width, height)] = keep
        return cast(Image, cv2.bitwise_and(image, image, mask=keep))
