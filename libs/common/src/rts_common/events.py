"""The playback event: the `playback-events` topic's value.

Every field of the baseline article keeps its name and meaning, so a baseline-style
consumer or browser page still understands it; `session_id` (also the record key) and
the optional fields after it are additions. Producers build it, the gateway validates
incoming JSON against it; `python -m rts_common.events` prints its JSON Schema.
"""

from __future__ import annotations

import json
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

EventType = Literal["play", "pause", "stop", "seek", "buffer_start", "buffer_end"]
Device = Literal["web", "tv", "mobile"]

EVENT_TYPES: tuple[EventType, ...] = ("play", "pause", "stop", "seek", "buffer_start", "buffer_end")
DEVICES: tuple[Device, ...] = ("web", "tv", "mobile")

ISO_UTC_PATTERN = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?Z$"


class PlaybackEvent(BaseModel):
    # Unknown fields pass through untouched: producers may add fields before consumers
    # know them, and the gateway forwards events as they came.
    model_config = ConfigDict(extra="allow", frozen=True)

    event_id: str = Field(min_length=1, max_length=128, description="unique per event")
    user_id: str = Field(min_length=1, max_length=128)
    movie_id: str = Field(min_length=1, max_length=128)
    event_type: EventType
    position_seconds: float = Field(ge=0, description="playhead position in the title")
    bitrate_kbps: int = Field(gt=0, le=1_000_000)
    device: Device
    ts: str = Field(pattern=ISO_UTC_PATTERN, description="event time, ISO-8601 UTC with Z")
    session_id: str = Field(min_length=1, max_length=128, description="also the record key")


def json_schema() -> dict[str, object]:
    return PlaybackEvent.model_json_schema()


if __name__ == "__main__":
    print(json.dumps(json_schema(), indent=2))  # noqa: T201
