"""Camera video: the camera directory, live MJPEG fan-out, replay, snapshots, the wall."""

from rts_gateway.video.feature import Video

__all__ = ["Video"]
