"""Stand-in cameras for tests and benchmarks: an RTSP server (GStreamer's) serving a clip
whose every frame carries its number, and the clips themselves (drawn here, encoded by
ffmpeg to H.264 or H.265).

The frame number is drawn as two rows of black and white blocks (the bits, then their
complement), big enough to survive H.264 and JPEG: whoever reads a frame back can tell
exactly which source frame it is, so a test can count frames end to end and find gaps.
"""

from __future__ import annotations

import contextlib
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Literal

import cv2
import numpy as np
import numpy.typing as npt

from rts_devstack import launch, ports
from rts_devstack.processes import ServiceProcess

Image = npt.NDArray[np.uint8]
Codec = Literal["h264", "h265"]
Transport = Literal["tcp", "udp", "any"]

MARKER_BITS = 16
# The system's Python carries GStreamer's bindings; the project's environment does not.
SYSTEM_PYTHON = "/usr/bin/python3"
SERVER_SCRIPT = Path(__file__).with_name("rtsp_camera.py")
ENCODERS = {"h264": "libx264", "h265": "libx265"}


def _block(width: int) -> int:
    return width // MARKER_BITS


def draw_frame(n: int, width: int, height: int) -> Image:
    """Source frame `n`: a moving gradient and bar for the eye and the motion detector,
    and the frame number's marker along the top."""
    x = np.arange(width, dtype=np.int32)[None, :]
    y = np.arange(height, dtype=np.int32)[:, None]
    image = np.empty((height, width, 3), np.uint8)
    image[..., 0] = ((x + 3 * n) % 256).astype(np.uint8)
    image[..., 1] = ((y * 255) // max(1, height - 1)).astype(np.uint8)
    image[..., 2] = 96
    bar = (n * 4) % width
    image[height // 3 :, bar : bar + max(4, width // 20)] = (0, 0, 255)
    block = _block(width)
    for row, bits in enumerate((n, ~n)):
        top = row * block
        for i in range(MARKER_BITS):
            on = (bits >> (MARKER_BITS - 1 - i)) & 1
            image[top : top + block, i * block : (i + 1) * block] = 255 if on else 0
    return image


def read_marker(image: npt.NDArray[Any]) -> int | None:
    """The frame number drawn on `image` (scaled or not), or None if no marker reads."""
    height, width = image.shape[:2]
    grey = image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    block = _block(width)
    if block < 4 or 2 * block > height:
        return None
    rows = []
    for row in range(2):
        value = 0
        for i in range(MARKER_BITS):
            # The block's centre: its edges blur into the neighbours under compression.
            y0, x0 = row * block + block // 4, i * block + block // 4
            patch = grey[y0 : y0 + block // 2, x0 : x0 + block // 2]
            value = (value << 1) | int(float(patch.mean()) > 127)
        rows.append(value)
    mask = (1 << MARKER_BITS) - 1
    return rows[0] if rows[0] ^ rows[1] == mask else None


def psnr(a: npt.NDArray[Any], b: npt.NDArray[Any]) -> float:
    """Peak signal-to-noise ratio of two images of one size, in dB (inf when equal)."""
    return float(cv2.PSNR(a, b))


def write_clip(
    path: Path,
    *,
    frames: int,
    fps: float,
    size: tuple[int, int],
    codec: Codec = "h264",
    keyframe_every: float = 1.0,
) -> Path:
    """Encode `frames` marked frames to `path` (.mp4 or .mkv) with ffmpeg; returns it.

    A keyframe every `keyframe_every` seconds (cameras send one every second or two: a
    player that joins waits for the next) and no B-frames (cameras send none: they add
    latency)."""
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        raise RuntimeError("ffmpeg is needed to encode the clip (`sudo make system-deps`)")
    width, height = size
    gop = max(1, round(fps * keyframe_every))
    command = [
        ffmpeg,
        *"-hide_banner -loglevel error -y -f rawvideo -pix_fmt bgr24".split(),
        *f"-s {width}x{height} -r {fps:g} -i - -c:v {ENCODERS[codec]} -preset ultrafast".split(),
        *f"-g {gop} -bf 0 -pix_fmt yuv420p".split(),
    ]
    if codec == "h265":
        command += ["-tag:v", "hvc1", "-x265-params", "log-level=error"]
    path.parent.mkdir(parents=True, exist_ok=True)
    with subprocess.Popen([*command, str(path)], stdin=subprocess.PIPE) as encoder:
        assert encoder.stdin is not None
        for n in range(frames):
            encoder.stdin.write(draw_frame(n, width, height).tobytes())
        encoder.stdin.close()
        if encoder.wait(300) != 0:
            raise RuntimeError(f"ffmpeg could not encode {path}")
    return path


def rtsp_available() -> str | None:
    """Why the RTSP stand-in cannot run here, or None when it can."""
    if not Path(SYSTEM_PYTHON).exists():
        return f"{SYSTEM_PYTHON} is missing"
    probe = subprocess.run(
        [
            SYSTEM_PYTHON,
            "-c",
            "import gi; gi.require_version('GstRtspServer', '1.0'); "
            "from gi.repository import GstRtspServer",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if probe.returncode != 0:
        return (
            "GStreamer's RTSP server is not installed for the system's Python "
            "(`sudo make system-deps`): " + probe.stderr.strip().splitlines()[-1]
        )
    return None


class RtspCamera:
    """GStreamer's RTSP server on 127.0.0.1 serving `clip` at `path`, in a process of its
    own that can be stopped, restarted on the same port, stalled and resumed."""

    def __init__(
        self,
        clip: Path,
        *,
        codec: Codec = "h264",
        path: str = "/stream",
        user: str = "",
        password: str = "",
        transport: Transport = "any",
        port: int | None = None,
        report_sent: bool = False,
    ) -> None:
        """`port`: where it listens (default: a port reserved until `close()`, so that a
        restart finds it still free); `report_sent`: the server says when each frame
        leaves (`sent_at`)."""
        self.clip, self.codec, self.path = clip, codec, path
        self.report_sent = report_sent
        self.user, self.password, self.transport = user, password, transport
        self._reserved: ports.Ports | None = None
        if port is None:
            self._reserved = ports.reserve(1)
            port = self._reserved[0]
        self.port = port
        self.process: ServiceProcess | None = None
        self.starts = 0

    def url(self, *, user: str | None = None, password: str | None = None, path: str = "") -> str:
        """The stream's URL, with these credentials (default: the camera's own)."""
        user = self.user if user is None else user
        password = self.password if password is None else password
        auth = f"{user}:{password}@" if user else ""
        return f"rtsp://{auth}127.0.0.1:{self.port}{path or self.path}"

    def start(self, timeout: float = 20.0) -> RtspCamera:
        argv = [
            SYSTEM_PYTHON,
            str(SERVER_SCRIPT),
            *f"--clip {self.clip} --codec {self.codec} --port {self.port}".split(),
            *f"--path {self.path} --transport {self.transport}".split(),
        ]
        if self.user:
            argv += ["--user", self.user, "--password", self.password]
        if self.report_sent:
            argv.append("--report-sent")
        self.starts += 1
        self.process = ServiceProcess(launch.process(f"rtsp-camera-{self.starts}", argv))
        self.process.wait_line("serving rtsp://", timeout)
        return self

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate(10)
            self.process = None

    def restart(self, down_for: float = 0.0) -> None:
        """Stop the server (every client's connection closes) and start it again on the
        same port, after `down_for` seconds."""
        self.stop()
        if down_for:
            time.sleep(down_for)
        self.start()

    def sent_at(self, fps: float) -> dict[int, int]:
        """Frame number -> when the server sent it (ns since epoch), from `--report-sent`
        lines: a frame's presentation time times the clip's rate is its number."""
        sent: dict[int, int] = {}
        if self.process is None:
            return sent
        for line in list(self.process.output):
            parts = line.split()
            if len(parts) == 3 and parts[0] == "sent" and parts[1].isdigit():
                sent.setdefault(round(int(parts[1]) * fps / 1e9), int(parts[2]))
        return sent

    def stall(self) -> None:
        """Every stream stops sending frames; connections and sessions stay open."""
        self._signal(signal.SIGUSR1, "stalled")

    def resume(self) -> None:
        self._signal(signal.SIGUSR2, "resumed")

    def _signal(self, signum: int, answer: str) -> None:
        assert self.process is not None, "the camera is not running"
        before = sum(answer in line for line in self.process.output)
        self.process.signal(signum)
        process = self.process
        process.wait_for(lambda: sum(answer in line for line in process.output) > before, 5, answer)

    def __enter__(self) -> RtspCamera:
        return self.start()

    def close(self) -> None:
        """Stop the server and give its port back."""
        with contextlib.suppress(AssertionError):
            self.stop()
        if self._reserved is not None:
            self._reserved.release()

    def __exit__(self, *_exc: object) -> None:
        self.close()


if __name__ == "__main__":  # a quick look: python -m rts_devstack.cameras out.mp4
    write_clip(Path(sys.argv[1]), frames=150, fps=15, size=(640, 360))
