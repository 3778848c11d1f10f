"""The probe's settings: flags, `PROBE_*` variables, and the shared LOG_* ones."""

from __future__ import annotations

from pydantic import SecretStr
from rts_common.logs import LoggingSettings
from rts_common.ops import OpsSettings
from rts_common.settings import setting


class ProbeSettings(LoggingSettings, OpsSettings):
    """One low-rate MJPEG viewer per camera through the gateway; exports the latency."""

    env_prefix = "PROBE_"
    program = "latency-probe"

    gateway_url: str = setting(
        "http://127.0.0.1:8000",
        "Base URL of the gateway (in a cluster: its Service)",
        pattern=r"^https?://[^/\s]+/?$",
    )
    auth_secret: SecretStr = setting(
        SecretStr(""),
        "The gateway's signing secret (its GATEWAY_AUTH_SECRET), to open a session; empty: "
        "the gateway asks for no sign-in",
    )
    fps: float = setting(
        2.0, "Frames per second asked of each stream (the gateway's ?fps= cap)", gt=0, le=30
    )
    cameras_interval: float = setting(
        30.0, "How often the gateway's camera list is read again (s)", ge=1, le=3600
    )
    read_timeout: float = setting(
        30.0,
        "A stream that sends nothing for this long is reopened (s); the gateway re-sends "
        "the last frame every 10 s when a camera is quiet",
        ge=1,
        le=600,
    )
    reconnect_max: float = setting(
        30.0, "Longest wait between attempts to reopen a failed stream (s)", ge=1, le=600
    )
    ops_port: int = setting(
        9120,
        "Port of the /metrics, /healthz, /readyz server (0: pick a free one)",
        ge=0,
        le=65535,
    )
