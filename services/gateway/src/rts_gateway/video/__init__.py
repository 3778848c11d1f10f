"""Camera video: the camera directory, the live path (live/) and the past (past/)."""

from rts_gateway.video.feature import Video

__all__ = ["Video"]
