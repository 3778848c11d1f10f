"""The camera stage: capture against real camera servers on the loopback (GStreamer's RTSP
server, HTTP servers), and the notifier against a real MQTT broker and webhook receivers.

Every server is a real one the test starts; what they need (GStreamer's RTSP server,
ffmpeg, mosquitto, opencv-doc's sample videos) `tools/system-deps.sh` installs, and a
missing one fails the stage, saying what to install.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from rts_devstack.cameras import RtspCamera, rtsp_available, write_clip

# Small and short: the stage is about behaviour, not resolution (make bench measures 720p
# and 1080p). 15 fps, a keyframe a second, a minute long: longer than any test reads.
CLIP_SIZE = (320, 240)
CLIP_FPS = 15
CLIP_SECONDS = 60
USER, PASSWORD = "viewer", "s3cr3t-Pw9"


@pytest.fixture(scope="session")
def rtsp_ready() -> None:
    why = rtsp_available()
    if why:
        pytest.fail(why, pytrace=False)


@pytest.fixture(scope="session")
def h264_clip(tmp_path_factory: pytest.TempPathFactory, rtsp_ready: None) -> Path:
    folder = tmp_path_factory.mktemp("clips")
    return write_clip(
        folder / "marked.mp4", frames=CLIP_FPS * CLIP_SECONDS, fps=CLIP_FPS, size=CLIP_SIZE
    )


@pytest.fixture
def rtsp_camera(h264_clip: Path) -> Iterator[RtspCamera]:
    """An RTSP camera that wants a user name and password, over TCP or UDP."""
    with RtspCamera(h264_clip, user=USER, password=PASSWORD) as camera:
        yield camera
