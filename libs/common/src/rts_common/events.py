"""The playback event: the `playback-events` topic's value.

Every field of the baseline article keeps its name and meaning, so a baseline-style
consumer or browser page still understands it; `session_id` (also the record key) and
the optional fields after it are additions that let a consumer compute quality of
experience exactly from one partition: each optional field is present only on the event
types its description names. Producers build it, the gateway validates incoming JSON
against it. The committed JSON Schema (`schemas/playback-event.schema.json`, for
consumers that are not Python) is generated from this model:
`python -m rts_common.events --write` regenerates it, and a test fails when it drifts.
"""

from __future__ import annotations

import argparse
import calendar
import functools
import json
import time
from importlib import resources
from typing import Annotated, Any, Literal, Self

import msgspec
from pydantic import BaseModel, ConfigDict, Field, JsonValue, model_validator

EventType = Literal["play", "pause", "stop", "seek", "buffer_start", "buffer_end"]
Device = Literal["web", "tv", "mobile"]
StopReason = Literal["completed", "abandoned", "startup_failure", "error"]
BufferReason = Literal["rebuffer", "seek"]

EVENT_TYPES: tuple[EventType, ...] = ("play", "pause", "stop", "seek", "buffer_start", "buffer_end")
DEVICES: tuple[Device, ...] = ("web", "tv", "mobile")
STOP_REASONS: tuple[StopReason, ...] = ("completed", "abandoned", "startup_failure", "error")
BUFFER_REASONS: tuple[BufferReason, ...] = ("rebuffer", "seek")

ISO_UTC_PATTERN = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?Z$"

SCHEMA_FILE = "playback-event.schema.json"

# The optional fields and the event types they may appear on. A field on any other type
# is a producer bug; rejecting it keeps "count stops by reason" and "sum buffer_ms" exact.
ONLY_ON: dict[str, tuple[EventType, ...]] = {
    "startup_ms": ("play",),
    "prev_bitrate_kbps": ("play", "buffer_end"),
    "buffer_reason": ("buffer_start", "buffer_end"),
    "buffer_ms": ("buffer_end", "stop"),
    "reason": ("stop",),
}


_OPTIONAL = frozenset(ONLY_ON)


def _only_on_rules() -> list[JsonValue]:
    """The ONLY_ON table as JSON Schema if/then rules (a null counts as absent, as in the model)."""
    return [
        {
            "if": {"required": [name], "properties": {name: {"not": {"type": "null"}}}},
            "then": {"properties": {"event_type": {"enum": list(types)}}},
        }
        for name, types in ONLY_ON.items()
    ]


class PlaybackEvent(BaseModel):
    """One thing a viewer's player reported, keyed by its playback session."""

    # Unknown fields pass through untouched: producers may add fields before consumers
    # know them, and the gateway forwards events as they came.
    model_config = ConfigDict(
        extra="allow",
        frozen=True,
        title="PlaybackEvent",
        json_schema_extra={"allOf": _only_on_rules()},
    )

    # -- the baseline article's fields, same names and meanings
    event_id: str = Field(min_length=1, max_length=128, description="unique per event")
    user_id: str = Field(min_length=1, max_length=128, description="the viewer")
    movie_id: str = Field(min_length=1, max_length=128, description="the title watched")
    event_type: EventType = Field(
        description=(
            "play: the first frame of a session, a resume after pause, or (with "
            "prev_bitrate_kbps, while playing) a bitrate step up; pause; stop: the session "
            "ended (see reason); seek: the playhead jumped (position_seconds is the target); "
            "buffer_start/buffer_end: playback stalled and resumed"
        )
    )
    position_seconds: float = Field(
        ge=0,
        description=(
            "playhead position in the title; while playing it advances exactly as ts does "
            "(capped at the title's end) and decreases only on seek"
        ),
    )
    bitrate_kbps: int = Field(gt=0, le=1_000_000, description="rendition bitrate from now on")
    device: Device
    ts: str = Field(pattern=ISO_UTC_PATTERN, description="event time, ISO-8601 UTC with Z")

    # -- additions
    session_id: str = Field(
        min_length=1,
        max_length=128,
        description="one viewing session (one title, one device); also the record key",
    )
    seq: int | None = Field(
        default=None,
        ge=1,
        description=(
            "per-session event counter: 1, 2, 3... in the order the player sent them; "
            "a gap means a lost event, a repeat a duplicate"
        ),
    )
    title_duration_seconds: float | None = Field(
        default=None, gt=0, description="length of the title; on every event of a session"
    )
    startup_ms: int | None = Field(
        default=None,
        ge=0,
        description=(
            "on a session's first play only: milliseconds from the viewer's request to the "
            "first frame (the stream start's startup time)"
        ),
    )
    prev_bitrate_kbps: int | None = Field(
        default=None,
        gt=0,
        le=1_000_000,
        description=(
            "present exactly when bitrate_kbps differs from the session's previous event: "
            "the bitrate before the switch (a step down on buffer_end after a rebuffer, a "
            "step up on a play while playing)"
        ),
    )
    buffer_reason: BufferReason | None = Field(
        default=None,
        description=(
            "on buffer_start and buffer_end: rebuffer (playback stalled) or seek (filling "
            "after a seek); industry rebuffering ratios count rebuffer only"
        ),
    )
    buffer_ms: int | None = Field(
        default=None,
        ge=0,
        description=(
            "on buffer_end, and on a stop that interrupted buffering: milliseconds since "
            "the session's buffer_start (equal to the difference of their ts)"
        ),
    )
    reason: StopReason | None = Field(
        default=None,
        description=(
            "on stop: completed (reached the end), abandoned (viewer left), "
            "startup_failure (never played: the session's only event), error (playback failed)"
        ),
    )

    @model_validator(mode="after")
    def _optional_fields_fit_the_event_type(self) -> Self:
        # Every consumer runs this for every event: only the fields that are set are
        # looked at (most events carry none of them).
        for name in self.model_fields_set & _OPTIONAL:
            types = ONLY_ON[name]
            if getattr(self, name) is not None and self.event_type not in types:
                raise ValueError(f"{name} is only allowed on {'/'.join(types)} events")
        return self


_Text = Annotated[str, msgspec.Meta(min_length=1, max_length=128)]
_Kbps = Annotated[int, msgspec.Meta(gt=0, le=1_000_000)]
_Count = Annotated[int, msgspec.Meta(ge=0)]
# ISO_UTC_PATTERN to the end of the text: Python's `$` also matches before a final newline,
# the model's regex engine does not.
_UTC = Annotated[str, msgspec.Meta(pattern=ISO_UTC_PATTERN.removesuffix("$") + r"\Z")]


class PlaybackEventStruct(msgspec.Struct, frozen=True, gc=False):
    """The playback event as a consumer's hot path reads it: PlaybackEvent's fields and
    checks, decoded by msgspec in strict mode (no coercion) several times faster than the
    model. PlaybackEvent stays the contract: `playback_event_from_json` hands what this
    refuses to the model, whose verdict stands, and a test holds the two to the same
    verdicts and values. Fields the model does not know are not kept (forward the
    record's JSON to pass them on)."""

    event_id: _Text
    user_id: _Text
    movie_id: _Text
    event_type: EventType
    position_seconds: Annotated[float, msgspec.Meta(ge=0)]
    bitrate_kbps: _Kbps
    device: Device
    ts: _UTC
    session_id: _Text
    seq: Annotated[int, msgspec.Meta(ge=1)] | None = None
    title_duration_seconds: Annotated[float, msgspec.Meta(gt=0)] | None = None
    startup_ms: _Count | None = None
    prev_bitrate_kbps: _Kbps | None = None
    buffer_reason: BufferReason | None = None
    buffer_ms: _Count | None = None
    reason: StopReason | None = None

    def __post_init__(self) -> None:
        # PlaybackEvent's ONLY_ON rule (msgspec reports the ValueError as a ValidationError).
        kind = self.event_type
        if (
            (self.startup_ms is not None and kind != "play")
            or (self.prev_bitrate_kbps is not None and kind not in ONLY_ON["prev_bitrate_kbps"])
            or (self.buffer_reason is not None and kind not in ONLY_ON["buffer_reason"])
            or (self.buffer_ms is not None and kind not in ONLY_ON["buffer_ms"])
            or (self.reason is not None and kind != "stop")
        ):
            raise ValueError("an optional field on an event type it is not allowed on")

    @classmethod
    def from_model(cls, event: PlaybackEvent) -> PlaybackEventStruct:
        return cls(**{name: getattr(event, name) for name in cls.__struct_fields__})


_decode_struct = msgspec.json.Decoder(PlaybackEventStruct).decode


def playback_event_from_json(data: bytes) -> PlaybackEventStruct:
    """A playback event from its JSON, or pydantic's ValidationError (the model's own
    verdict and reason) when it breaks the contract."""
    try:
        return _decode_struct(data)
    except (msgspec.DecodeError, RecursionError):
        # Refused, or outside what the strict decoder reads (a number as a string, a
        # nesting deeper than the stack): the model decides.
        return PlaybackEventStruct.from_model(PlaybackEvent.model_validate_json(data))


def ts_to_ns(ts: str) -> int:
    """An event's `ts` (ISO-8601 UTC with Z, up to 9 fractional digits) as ns since the epoch."""
    whole, _, fraction = ts.rstrip("Z").partition(".")
    # Consumers parse every event's ts; events of a stream share their minute, so the
    # calendar arithmetic is done once per minute (strptime is most of the cost).
    seconds = _minute_start(whole[:16]) + int(whole[17:19])
    return seconds * 1_000_000_000 + int((fraction or "0").ljust(9, "0")[:9])


@functools.lru_cache(maxsize=1024)
def _minute_start(minute: str) -> int:
    return calendar.timegm(time.strptime(minute, "%Y-%m-%dT%H:%M"))


def ns_to_ts(ns: int) -> str:
    """ns since the epoch as an event `ts` with microseconds (what producers here write)."""
    seconds, rest = divmod(ns, 1_000_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{rest // 1000:06d}Z"


def json_schema() -> dict[str, Any]:
    """The model's JSON Schema (draft 2020-12), as committed in `schemas/`."""
    schema = PlaybackEvent.model_json_schema()
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", **schema}


def render_schema() -> str:
    return json.dumps(json_schema(), indent=2) + "\n"


def committed_schema() -> dict[str, Any]:
    """The schema file shipped in the package."""
    text = resources.files("rts_common").joinpath("schemas", SCHEMA_FILE).read_text()
    loaded: dict[str, Any] = json.loads(text)
    return loaded


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Print or write the playback event's JSON Schema")
    parser.add_argument("--write", action="store_true", help=f"write schemas/{SCHEMA_FILE}")
    args = parser.parse_args(argv)
    if args.write:
        target = resources.files("rts_common").joinpath("schemas", SCHEMA_FILE)
        with resources.as_file(target) as path:
            path.parent.mkdir(exist_ok=True)
            path.write_text(render_schema())
            print(f"wrote {path}")  # noqa: T201
    else:
        print(render_schema(), end="")  # noqa: T201


if __name__ == "__main__":
    main()
