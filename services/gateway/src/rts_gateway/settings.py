"""The gateway's settings: flags or GATEWAY_* environment variables (`gateway --help`)."""

from __future__ import annotations

from typing import Literal

from pydantic import SecretStr
from rts_common.kafka import KafkaSettings
from rts_common.logs import LoggingSettings
from rts_common.settings import setting

from rts_gateway.bridge.runtime import AsyncMode


class GatewaySettings(KafkaSettings, LoggingSettings):
    """Serve Kafka's camera frames as MJPEG and the live dashboard over Socket.IO."""

    env_prefix = "GATEWAY_"
    program = "gateway"

    host: str = setting("0.0.0.0", "Address to listen on")
    port: int = setting(8000, "Port to listen on", ge=0, le=65535)
    async_mode: AsyncMode = setting(
        "eventlet",
        "eventlet: gunicorn's eventlet worker, green threads (one process serves thousands of "
        "connections); threading: gunicorn's gthread worker with simple-websocket",
    )
    threads: int = setting(
        256,
        "Worker threads in threading mode; each MJPEG viewer holds one for its whole stream",
        ge=4,
        le=10_000,
    )
    worker_connections: int = setting(
        10_000, "Most simultaneous connections in eventlet mode", ge=10, le=100_000
    )
    graceful_timeout: float = setting(
        10.0, "Seconds a SIGTERM waits for open requests before closing them", gt=0, le=300
    )
    default_camera: str = setting(
        "", "Camera that /kaf streams (empty: the first camera seen, as the baseline had one)"
    )
    # Video fan-out
    frame_start_seconds: float = setting(
        1.0,
        "When a pod starts reading a camera's partition, it begins this many seconds back so "
        "the first frame shows at once",
        ge=0,
        le=60,
    )
    release_after_seconds: float = setting(
        5.0, "Keep reading a camera's partition this long after its last viewer left", ge=0
    )
    stall_timeout_seconds: float = setting(
        15.0, "Drop a viewer whose connection has not taken a frame for this long", gt=0
    )
    stream_send_buffer: int = setting(
        64 * 1024,
        "Kernel send buffer of each MJPEG connection, in bytes (0: the OS default, which "
        "grows to megabytes). Every byte queued there is video a slow viewer sees late, so "
        "keep it to a frame or two; raise it for viewers far away (a connection moves at "
        "most about this much per round trip)",
        ge=0,
    )
    snapshot_wait_seconds: float = setting(
        3.0, "How long /snapshot waits for a frame before answering 404", gt=0, le=60
    )
    camera_max_age_seconds: float = setting(
        300.0, "Cameras silent for longer are left out of /api/cameras and the wall", gt=0
    )
    max_replays: int = setting(
        32,
        "Most concurrent Kafka reads made for one request per process: replay streams, "
        "timelines, snapshots at a time and clips (each needs its own consumer)",
        ge=0,
    )
    replay_buffer_bytes: int = setting(
        8 * 1024 * 1024,
        "Most JPEG bytes a replay holds ahead of its pacing, including what it is fetching "
        "(one frame larger than this still passes); librdkafka prefetches at most 2 MiB "
        "more per replay",
        ge=64 * 1024,
        le=512 * 1024 * 1024,
    )
    read_timeout_seconds: float = setting(
        10.0,
        "How long a timeline, a snapshot at a time or a clip's first pass may read Kafka "
        "before the request gives up (503)",
        gt=0,
        le=120,
    )
    timeline_max_detections: int = setting(
        5000, "Most detections one /api/timeline answer carries (then truncated)", ge=1,
        le=1_000_000,
    )  # fmt: skip
    clip_max_seconds: float = setting(
        120.0, "Longest clip /clip serves, in seconds of capture time", gt=0, le=3600
    )
    access_log: bool = setting(False, "Log every HTTP request (gunicorn's access log)")
    # The dashboard
    group_id: str = setting(
        "gateway-dashboard",
        "Consumer group the replicas share for playback events and detections",
        min_length=1,
    )
    events_start: Literal["latest", "earliest"] = setting(
        "latest",
        "Where a new consumer group starts: latest (live only) or earliest (all retained)",
    )
    event_sample_rate: float = setting(
        20.0,
        "new_event emits per second per replica; the other events only feed the aggregates",
        ge=0,
        le=10_000,
    )
    wall_fps: float = setting(4.0, "Frames per second of each camera-wall tile", gt=0, le=30)
    wall_width: int = setting(320, "Width in pixels of camera-wall tiles", ge=32, le=1920)
    wall_quality: int = setting(70, "JPEG quality of camera-wall tiles", ge=10, le=100)
    # Access (DESIGN.md §9)
    auth_secret: SecretStr = setting(
        SecretStr(""),
        "Secret that signs login links and session cookies, shared by every replica; empty: "
        "no sign-in (anyone who reaches the gateway may watch; fine on a laptop only)",
    )
    login_ttl_seconds: int = setting(600, "How long a login link stays valid", ge=10, le=86_400)
    session_ttl_seconds: int = setting(
        12 * 3600, "How long a session cookie stays valid", ge=60, le=30 * 86_400
    )
    allowed_origins: str = setting(
        "",
        "Origins (scheme://host[:port], comma-separated) whose pages may open Socket.IO "
        "connections; empty: only the gateway's own origin",
    )
    broadcast: bool = setting(
        True,
        "Relay dashboard emits through Kafka so every replica's browsers get every "
        "partition's data (--no-broadcast: this replica's own data only)",
    )
