"""The gateway's settings: flags or GATEWAY_* environment variables (`gateway --help`)."""

from __future__ import annotations

import os
import socket
from typing import Literal

from pydantic import SecretStr
from rts_common.kafka import KafkaSettings
from rts_common.logs import LoggingSettings
from rts_common.ops import OpsSettings
from rts_common.settings import setting

from rts_gateway.bridge.runtime import AsyncMode


class GatewaySettings(KafkaSettings, LoggingSettings, OpsSettings):
    """Serve Kafka's camera frames as MJPEG and the live dashboard over Socket.IO."""

    env_prefix = "GATEWAY_"
    program = "gateway"

    replica: str = setting(
        "",
        "Name of this replica, in the X-Gateway-Replica header of every response, in "
        "rts_build_info and as the owner of its dashboard partitions (the chart sets the "
        "pod's name); empty: host name and process id",
        max_length=253,
    )
    host: str = setting("0.0.0.0", "Address to listen on")
    port: int = setting(8000, "Port of the dashboard, the streams and the API", ge=0, le=65535)
    ops_port: int = setting(
        9130,
        "Port of /metrics, /healthz and /readyz, for probes and Prometheus; never route it "
        "from the public ingress (0: pick a free one)",
        ge=0,
        le=65535,
    )
    trusted_proxies: str = setting(
        "",
        "Addresses or networks (CIDR, comma-separated) of the reverse proxies whose "
        "X-Forwarded-Proto and X-Forwarded-For are believed: the ingress controller. Only "
        "then does a request that reached the proxy over TLS get a Secure cookie. Empty: no "
        "proxy is trusted",
    )
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
        5000,
        "Most detections one /api/timeline answer carries (then truncated)",
        ge=1,
        le=1_000_000,
    )
    clip_max_seconds: float = setting(
        120.0, "Longest clip /clip serves, in seconds of capture time", gt=0, le=3600
    )
    max_streams: int = setting(
        2000, "Most concurrent MJPEG streams (live and replay) per process", ge=0
    )
    max_streams_per_session: int = setting(
        8, "Most concurrent MJPEG streams (live and replay) per signed-in session", ge=0
    )
    max_replays_per_session: int = setting(
        2, "Most concurrent replay streams per signed-in session", ge=0
    )
    access_log: bool = setting(False, "Log every HTTP request (gunicorn's access log)")
    # The dashboard
    group_id: str = setting(
        "gateway-dashboard",
        "Consumer group the replicas share for playback events and detections",
        min_length=1,
    )
    group_session_timeout_seconds: float = setting(
        10.0,
        "A replica that stops heartbeating (crashed, frozen) loses its partitions to the "
        "others after this long; the broker bounds it (group.min.session.timeout.ms, 6 s)",
        ge=1,
        le=300,
    )
    consumer_liveness_seconds: float = setting(
        30.0,
        "A Kafka consumer outside its consumer group, or not reading the partitions it was "
        "assigned, for this long while Kafka answers has failed: /healthz answers 503 "
        "naming it (a group member whose client finds no coordinator gets a new client "
        "after a third of it)",
        ge=3,
        le=3600,
    )
    checkpoint_seconds: float = setting(
        5.0,
        "How often each owned playback-events partition's QoE state is written to "
        "qoe-checkpoints (and always when the partition moves): after a crash, the next "
        "owner re-reads at most this much",
        gt=0,
        le=3600,
    )
    dedupe_window: int = setting(
        20_000,
        "Event ids remembered per partition to drop duplicates (a producer that sent an "
        "event twice); 0: no deduplication",
        ge=0,
        le=10_000_000,
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
        12 * 3600,
        "How long a session stays valid; its open streams and sockets end when it expires",
        ge=10,
        le=30 * 86_400,
    )
    login_attempts_per_minute: float = setting(
        10.0,
        "Sign-in attempts allowed per client address and minute (bursts of as many)",
        gt=0,
        le=10_000,
    )
    socketio_max_message_bytes: int = setting(
        16 * 1024,
        "Largest Socket.IO message a browser may send (it only sends small commands)",
        ge=1024,
        le=16 * 1024 * 1024,
    )
    socketio_compression: bool = setting(
        False,
        "Accept WebSocket compression (permessage-deflate) when a browser offers it: each "
        "message is then compressed for every dashboard on its own, which costs CPU per "
        "client and about 300 KiB of memory per dashboard; off, dashboards get plain frames",
    )
    socketio_client_backlog_bytes: int = setting(
        64 * 1024,
        "How far a dashboard may fall behind (bytes waiting for its connection, past the "
        "kernel's send buffer) before the messages waiting for it are dropped and counted: "
        "a slow dashboard then sees a gap and the present, never seconds of backlog "
        "(eventlet mode)",
        ge=1024,
        le=64 * 1024 * 1024,
    )
    socketio_send_buffer: int = setting(
        64 * 1024,
        "Kernel send buffer of each Socket.IO WebSocket, in bytes (0: the OS default, which "
        "grows to megabytes of late messages for a slow dashboard; eventlet mode)",
        ge=0,
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

    @property
    def replica_name(self) -> str:
        """Unique among the replicas: several may share a host (and read in the worker
        process, whose id it is)."""
        return self.replica or f"{socket.gethostname()}-{os.getpid()}"
