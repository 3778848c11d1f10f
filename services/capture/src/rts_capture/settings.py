"""Capture's settings: one camera per process, from flags or CAPTURE_* environment variables."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import ValidationInfo, field_validator
from rts_common.contracts import CAMERA_ID, SourceKind
from rts_common.kafka import KafkaSettings
from rts_common.logs import LoggingSettings
from rts_common.net import public_url as public
from rts_common.ops import OpsSettings
from rts_common.settings import setting

from rts_capture.zones import Zone, ZoneError, parse

# The test pattern's own rate when --fps does not set one.
TEST_PATTERN_FPS = 15.0
# How often a snapshot URL is polled when --fps does not say.
SNAPSHOT_FPS = 1.0


@dataclass(frozen=True)
class SourceSpec:
    """What `--source` names: the test pattern, a camera index, a URL or a file."""

    kind: SourceKind
    target: str

    @classmethod
    def parse(cls, text: str) -> SourceSpec:
        text = text.strip()
        if text == "test":
            return cls("test", "test")
        if text.isdigit():
            return cls("camera", str(int(text)))
        if "://" in text:
            return cls("url", text)
        return cls("file", text)

    @property
    def index(self) -> int:
        return int(self.target)

    @property
    def path(self) -> Path:
        return Path(self.target)

    def describe(self) -> str:
        """For logs: a URL without its credentials."""
        return public(self.target) if self.kind == "url" else self.target

    def default_camera_id(self) -> str:
        if self.kind == "test":
            return "test"
        if self.kind == "camera":
            return f"camera{self.index}"
        if self.kind == "file":
            stem = self.path.stem
        else:
            parts = urlsplit(self.target)
            stem = "-".join(p for p in (parts.hostname, *parts.path.split("/")) if p)
        cleaned = re.sub(r"[^A-Za-z0-9._-]+", "-", stem).strip("-._")[:64]
        return cleaned or "camera"


class CaptureSettings(KafkaSettings, LoggingSettings, OpsSettings):
    """Capture one camera, video file, RTSP/HTTP stream or the built-in test pattern into
    Kafka: JPEG frames to video-frames, motion and face boxes to video-detections."""

    env_prefix = "CAPTURE_"
    program = "capture"

    source: str = setting(
        "0",
        "What to capture: a camera index (0), a video file, an rtsp:// or http:// URL, "
        "or 'test' for the built-in test pattern",
        min_length=1,
    )
    camera_id: str = setting(
        "",
        "Camera id: the record key and the gateway's /stream/<id> (default: from the source, "
        "e.g. 'test', 'camera0', the file's name)",
        max_length=64,
    )
    fps: float = setting(
        0.0,
        "Frame rate cap; 0: the source's own rate (a file's frame rate, what a camera or "
        f"stream delivers, {TEST_PATTERN_FPS:g} for the test pattern)",
        ge=0,
        le=120,
    )
    max_width: int = setting(
        1280, "Frames wider than this are scaled down (aspect kept); 0: never", ge=0, le=7680
    )
    jpeg_quality: int = setting(80, "JPEG quality", ge=10, le=100)
    loop: bool = setting(False, "Play a video file again from the start when it ends")

    test_width: int = setting(640, "Test pattern width", ge=64, le=3840)
    test_height: int = setting(480, "Test pattern height", ge=64, le=2160)
    test_face: str = setting(
        "", "Image (PNG/JPEG) of a face that moves through the test pattern; empty: none"
    )

    motion: bool = setting(True, "Detect motion (every frame)")
    motion_width: int = setting(
        320, "Width of the small grey frame motion is computed on", ge=64, le=1920
    )
    motion_threshold: int = setting(
        25, "Grey-level change (0-255) that counts as a moving pixel", ge=1, le=255
    )
    motion_min_area: float = setting(
        0.002, "Smallest moving region reported, as a fraction of the frame area", gt=0, le=1
    )
    faces: bool = setting(True, "Detect faces (OpenCV's frontal-face Haar cascade)")
    face_every: int = setting(5, "Run face detection on every Nth frame", ge=1, le=1000)
    face_width: int = setting(
        640, "Frames are scaled down to this width for face detection", ge=160, le=3840
    )
    face_min_size: int = setting(
        32, "Smallest face reported, in pixels at --face-width", ge=16, le=1024
    )

    people: bool = setting(
        False, "Detect people (OpenCV's HOG pedestrian detector; costlier than faces)"
    )
    people_every: int = setting(10, "Run people detection on every Nth frame", ge=1, le=1000)
    people_width: int = setting(
        800, "Frames are scaled down to this width for people detection", ge=160, le=3840
    )
    people_min_score: float = setting(
        0.5, "Lowest HOG score (SVM margin) reported as a person", ge=0, le=10
    )
    zones: str = setting(
        "",
        "Named zones: 'name=x,y x,y x,y[;name=...]', points as fractions (0-1) of the "
        "frame's width and height; a detection carries the zones its boxes stand in",
    )
    masks: str = setting(
        "",
        "Regions hidden from every detector (a clock overlay, a tree in the wind), "
        "written like --zones",
    )

    rtsp_transport: Literal["tcp", "udp"] = setting(
        "tcp",
        "RTSP transport: tcp (RTP interleaved in the RTSP connection: no loss, through "
        "firewalls and NAT) or udp (less latency on a clean LAN; lost packets are torn frames)",
    )
    snapshot: bool = setting(
        False,
        "The http(s) URL serves one JPEG per request (a camera's snapshot URL): poll it at "
        f"--fps (default {SNAPSHOT_FPS:g}/s) instead of reading a stream",
    )

    stall_timeout: float = setting(
        5.0,
        "Seconds without a frame before the source counts as lost and is reopened",
        ge=0.5,
        le=300,
    )
    open_timeout: float = setting(
        10.0, "Seconds a stream URL may take to open (FFmpeg backend)", ge=0.5, le=300
    )
    reconnect_max: float = setting(
        30.0, "Longest wait between reopen attempts (the backoff doubles up to it)", ge=1, le=600
    )
    queue_max_frames: int = setting(
        50,
        "Producer queue bound, in records; when full, new frames are dropped and counted",
        ge=1,
        le=100_000,
    )
    message_timeout: float = setting(
        3.0,
        "Seconds an undelivered frame may wait in the producer before it is dropped",
        ge=0.5,
        le=300,
    )
    shutdown_timeout: float = setting(5.0, "Seconds to flush the producer on shutdown", ge=0, le=60)
    status_interval: float = setting(
        1.0, "Seconds between camera status messages on video-cameras", ge=0.1, le=60
    )

    @field_validator("camera_id")
    @classmethod
    def _url_safe(cls, value: str) -> str:
        if value and not CAMERA_ID.fullmatch(value):
            raise ValueError(
                "use letters, digits, '.', '_' and '-', starting with a letter or digit"
            )
        return value

    @field_validator("zones", "masks")
    @classmethod
    def _polygons(cls, value: str, info: ValidationInfo) -> str:
        try:
            parse(value, "zone" if info.field_name == "zones" else "mask")
        except ZoneError as exc:
            raise ValueError(str(exc)) from None
        return value

    @field_validator("snapshot")
    @classmethod
    def _snapshot_needs_http(cls, value: bool, info: ValidationInfo) -> bool:
        source = str(info.data.get("source", "")).strip().lower()
        if value and not source.startswith(("http://", "https://")):
            raise ValueError("a snapshot URL is polled over HTTP: --source must be http(s)://")
        return value

    @property
    def zone_list(self) -> tuple[Zone, ...]:
        return parse(self.zones, "zone")

    @property
    def mask_list(self) -> tuple[Zone, ...]:
        return parse(self.masks, "mask")

    @property
    def source_spec(self) -> SourceSpec:
        return SourceSpec.parse(self.source)

    @property
    def camera(self) -> str:
        return self.camera_id or self.source_spec.default_camera_id()
