"""event-sim's settings: flags, `EVENTSIM_*` variables, and the shared KAFKA_*/LOG_* ones."""

from __future__ import annotations

import re
import time
from typing import Literal

from pydantic import field_validator
from rts_common.events import ISO_UTC_PATTERN, ts_to_ns
from rts_common.kafka import KafkaSettings
from rts_common.logs import LoggingSettings
from rts_common.ops import OpsSettings
from rts_common.settings import setting


class EventSimSettings(KafkaSettings, LoggingSettings, OpsSettings):
    """Simulated viewers whose players report playback events to Kafka."""

    env_prefix = "EVENTSIM_"
    program = "event-sim"

    rate: float = setting(
        100.0,
        "Events per second of simulated time; with --realtime also per second of wall time",
        gt=0,
        le=1_000_000,
    )
    realtime: bool = setting(
        True,
        "Pace the events at --rate in wall time (--no-realtime: as fast as possible, for "
        "benchmarks; timestamps then run ahead of the wall clock)",
    )
    users: int = setting(
        10_000,
        "Simulated viewers; a lifelike pace needs about 100 per event per second (fewer act "
        "busier than in life, see eventsim_viewer_pace)",
        ge=1,
        le=10_000_000,
    )
    titles: int = setting(
        1000, "Titles in the catalogue (popularity is Zipf-skewed)", ge=1, le=1_000_000
    )
    seed: int | None = setting(
        None,
        "Seed of the one random generator (default: a random one, logged so the run can be "
        "repeated); with --start-time too, the run is reproducible event for event",
        ge=0,
    )
    start_time: str = setting(
        "",
        "Simulated clock's origin, ISO-8601 UTC like 2026-01-01T00:00:00Z (default: now)",
    )
    count: int = setting(0, "Stop after this many events (0: no limit)", ge=0)
    duration: float = setting(0.0, "Stop after this many simulated seconds (0: no limit)", ge=0)

    compression: Literal["lz4", "zstd"] = setting(
        "lz4", "Producer compression (lz4: cheapest CPU; zstd: smallest on the wire)"
    )
    linger_ms: int = setting(20, "How long the producer waits to fill a batch (ms)", ge=0, le=1000)
    batch_bytes: int = setting(
        512 * 1024,
        "Largest batch the producer sends to one partition (bytes)",
        ge=1024,
        le=16 * 1024 * 1024,
    )
    queue_messages: int = setting(
        200_000,
        "Events the producer may hold before the simulation waits for the broker",
        ge=1000,
        le=10_000_000,
    )
    delivery_timeout_ms: int = setting(
        120_000,
        "Give up on an event the broker has not acknowledged after this long (ms)",
        ge=1000,
        le=3_600_000,
    )
    flush_timeout: float = setting(
        10.0,
        "On shutdown, wait this long for the broker to acknowledge what is queued (s)",
        ge=0,
        le=300,
    )
    ops_port: int = setting(
        9110,
        "Port of the /metrics, /healthz, /readyz server (0: pick a free one)",
        ge=0,
        le=65535,
    )

    @field_validator("start_time")
    @classmethod
    def _iso_utc(cls, value: str) -> str:
        if value and not re.match(ISO_UTC_PATTERN, value):
            raise ValueError("expected ISO-8601 UTC with Z, like 2026-01-01T00:00:00Z")
        return value

    def start_ns(self) -> int:
        return ts_to_ns(self.start_time) if self.start_time else time.time_ns()
