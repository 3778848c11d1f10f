"""Sample media for the local stack and the tests, generated instead of committed.

`python -m rts_capture.sample DIR` writes DIR/sample.mp4 (a short synthetic street
scene) and, when the development environment has scikit-image, DIR/face.png (NASA's
public-domain astronaut portrait) for `capture --test-face`. Both are rewritten only
when missing.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

from rts_capture.sources import Image

log = logging.getLogger(__name__)

SAMPLE_VIDEO = "sample.mp4"
FACE_IMAGE = "face.png"


def sample_frame(n: int, fps: float, width: int, height: int) -> Image:
    """Frame `n` of the sample scene: cars crossing a road at night, and a blinking light."""
    t = n / fps
    image = np.zeros((height, width, 3), np.uint8)
    horizon = height // 2
    image[:horizon] = (60, 30, 20)
    image[horizon:] = (45, 45, 45)
    lane = horizon + (height - horizon) // 2
    for x in range(-(round(t * 80) % 80), width, 80):
        cv2.line(image, (x, lane), (x + 40, lane), (200, 200, 200), 3)
    cars = ((0.9, (40, 40, 200), 0.62), (0.6, (200, 120, 30), 0.85), (1.4, (60, 180, 60), 0.72))
    for speed, colour, row in cars:
        length, tall = width // 6, height // 10
        span = width + length
        x = round((t * speed * width / 4) % span) - length
        y = round(height * row) - tall
        cv2.rectangle(image, (x, y), (x + length, y + tall), colour, -1)
        cv2.circle(image, (x + length, y + tall // 2), max(2, tall // 5), (200, 255, 255), -1)
    if int(t * 2) % 2 == 0:
        cv2.circle(image, (width - 40, 40), 12, (0, 200, 255), -1)
    cv2.putText(
        image,
        f"sample  {n:05d}",
        (12, 28),
        cv2.FONT_HERSHEY_SIMPLEX,
        0.7,
        (255, 255, 255),
        2,
        cv2.LINE_AA,
    )
    return image


Scene = Callable[[int, float, int, int], Image]


def write_video(
    path: Path,
    frames: int,
    fps: float = 25.0,
    size: tuple[int, int] = (640, 360),
    scene: Scene = sample_frame,
) -> Path:
    """Write `frames` frames of `scene` to `path` (.mp4: MPEG-4 part 2; .avi: MJPEG)."""
    width, height = size
    codec = "MJPG" if path.suffix.lower() == ".avi" else "mp4v"
    path.parent.mkdir(parents=True, exist_ok=True)
    # Write next to the target and rename, so a reader never sees half a file.
    partial = path.with_name(f".{path.stem}.partial{path.suffix}")
    writer = cv2.VideoWriter(str(partial), cv2.VideoWriter.fourcc(*codec), fps, (width, height))
    if not writer.isOpened():
        raise RuntimeError(f"OpenCV cannot write {codec} video to {partial}")
    try:
        for n in range(frames):
            writer.write(scene(n, fps, width, height))
    finally:
        writer.release()
    partial.replace(path)
    return path


def write_face(path: Path) -> bool:
    """Write the astronaut's head and shoulders to `path`; False without scikit-image."""
    try:
        from skimage import data
    except ImportError:
        return False
    # RGB to BGR, cropped around the face.
    portrait = data.astronaut()[10:310, 110:350, ::-1]  # type: ignore[no-untyped-call]
    path.parent.mkdir(parents=True, exist_ok=True)
    return bool(cv2.imwrite(str(path), np.ascontiguousarray(portrait)))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m rts_capture.sample", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("dir", type=Path, help="folder to write into")
    parser.add_argument("--seconds", type=float, default=12.0, help="length of the video")
    parser.add_argument("--fps", type=float, default=25.0, help="frame rate of the video")
    parser.add_argument("--force", action="store_true", help="rewrite files that exist")
    args = parser.parse_args(argv)
    video, face = args.dir / SAMPLE_VIDEO, args.dir / FACE_IMAGE
    if args.force or not video.exists():
        write_video(video, round(args.seconds * args.fps), args.fps)
        print(f"wrote {video}")  # noqa: T201
    if (args.force or not face.exists()) and write_face(face):
        print(f"wrote {face}")  # noqa: T201
    return 0


if __name__ == "__main__":
    sys.exit(main())
