import json
from pathlib import Path
from typing import Any

import jsonschema
import msgspec
import pytest
import rts_common
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError
from rts_common.events import (
    BUFFER_REASONS,
    DEVICES,
    EVENT_TYPES,
    ONLY_ON,
    SCHEMA_FILE,
    STOP_REASONS,
    PlaybackEvent,
    PlaybackEventStruct,
    committed_schema,
    json_schema,
    ns_to_ts,
    playback_event_from_json,
    ts_to_ns,
)

BASELINE = {
    "event_id": "evt-1",
    "user_id": "user_7",
    "movie_id": "MOV003",
    "event_type": "play",
    "position_seconds": 0,
    "bitrate_kbps": 2400,
    "device": "tv",
    "ts": "2026-11-22T03:20:00.123456Z",
    "session_id": "s-1",
}

VALIDATOR = jsonschema.Draft202012Validator(committed_schema())


def test_a_baseline_shaped_event_with_session_is_valid_and_keeps_extra_fields() -> None:
    event = PlaybackEvent.model_validate({**BASELINE, "cdn": "edge-3"})
    assert event.event_type == "play"
    assert event.model_dump()["cdn"] == "edge-3"
    assert VALIDATOR.is_valid({**BASELINE, "cdn": "edge-3"})


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("event_type", "rewind"),
        ("device", "fridge"),
        ("ts", "2026-11-22 03:20:00"),
        ("position_seconds", -1),
        ("bitrate_kbps", 0),
        ("seq", 0),
        ("startup_ms", -5),
        ("reason", "bored"),
        ("buffer_reason", "network"),
    ],
)
def test_events_breaking_the_contract_are_rejected(field: str, value: object) -> None:
    with pytest.raises(ValidationError):
        PlaybackEvent.model_validate({**BASELINE, field: value})
    assert not VALIDATOR.is_valid({**BASELINE, field: value})


def test_session_id_is_required() -> None:
    without = {k: v for k, v in BASELINE.items() if k != "session_id"}
    with pytest.raises(ValidationError):
        PlaybackEvent.model_validate(without)
    assert not VALIDATOR.is_valid(without)


@pytest.mark.parametrize(
    "event",
    [
        {"event_type": "play", "seq": 1, "startup_ms": 830, "title_duration_seconds": 5400},
        {"event_type": "play", "seq": 9, "prev_bitrate_kbps": 1200},
        {"event_type": "buffer_start", "buffer_reason": "rebuffer"},
        {"event_type": "buffer_end", "buffer_reason": "seek", "buffer_ms": 420},
        {
            "event_type": "buffer_end",
            "buffer_reason": "rebuffer",
            "buffer_ms": 3100,
            "prev_bitrate_kbps": 4800,
        },
        {"event_type": "stop", "reason": "abandoned", "buffer_ms": 5000},
        {"event_type": "stop", "reason": "startup_failure"},
    ],
)
def test_the_qoe_fields_are_accepted_on_their_event_types(event: dict[str, Any]) -> None:
    PlaybackEvent.model_validate({**BASELINE, **event})
    assert VALIDATOR.is_valid({**BASELINE, **event})


@pytest.mark.parametrize(
    "event",
    [
        {"event_type": "pause", "startup_ms": 830},
        {"event_type": "seek", "prev_bitrate_kbps": 1200},
        {"event_type": "play", "buffer_reason": "rebuffer"},
        {"event_type": "buffer_start", "buffer_ms": 10},
        {"event_type": "play", "reason": "completed"},
    ],
)
def test_the_qoe_fields_are_refused_on_other_event_types(event: dict[str, Any]) -> None:
    with pytest.raises(ValidationError, match="only allowed on"):
        PlaybackEvent.model_validate({**BASELINE, **event})
    assert not VALIDATOR.is_valid({**BASELINE, **event})


def test_the_committed_schema_is_the_model_s_schema() -> None:
    assert committed_schema() == json_schema(), (
        "the model changed: run `python -m rts_common.events --write` and commit "
        f"libs/common/src/rts_common/schemas/{SCHEMA_FILE}"
    )
    path = Path(rts_common.__file__).parent / "schemas" / SCHEMA_FILE
    assert path.read_text() == json.dumps(json_schema(), indent=2) + "\n"


optional_values = {
    "seq": st.integers(-1, 5),
    "startup_ms": st.integers(-1, 60_000),
    "prev_bitrate_kbps": st.integers(-1, 8000),
    "buffer_reason": st.sampled_from([*BUFFER_REASONS, "other"]),
    "buffer_ms": st.integers(-1, 60_000),
    "reason": st.sampled_from([*STOP_REASONS, "other"]),
    "title_duration_seconds": st.floats(-1, 10_000, allow_nan=False),
}


@st.composite
def events(draw: st.DrawFn) -> dict[str, Any]:
    event = {
        **BASELINE,
        "event_type": draw(st.sampled_from([*EVENT_TYPES, "rewind"])),
        "device": draw(st.sampled_from([*DEVICES, "fridge"])),
        "position_seconds": draw(st.floats(-1, 10_000, allow_nan=False)),
    }
    for name in draw(st.sets(st.sampled_from(sorted(optional_values)))):
        event[name] = draw(optional_values[name] | st.none())
    return event


@settings(max_examples=400, deadline=None)
@given(event=events())
def test_the_json_schema_and_the_model_agree_on_every_event(event: dict[str, Any]) -> None:
    try:
        PlaybackEvent.model_validate(event)
        model_valid = True
    except ValidationError:
        model_valid = False
    assert VALIDATOR.is_valid(event) == model_valid


def test_only_on_covers_every_optional_qoe_field() -> None:
    optional = {
        name for name, field in PlaybackEvent.model_fields.items() if not field.is_required()
    }
    assert optional - set(ONLY_ON) == {"seq", "title_duration_seconds"}


@given(ns=st.integers(0, 4_000_000_000 * 10**9))
def test_timestamps_round_trip_at_microsecond_precision(ns: int) -> None:
    text = ns_to_ts(ns)
    assert text.endswith("Z")
    assert ts_to_ns(text) == ns - ns % 1000
    PlaybackEvent.model_validate({**BASELINE, "ts": text})


def fields(event: PlaybackEvent | PlaybackEventStruct) -> dict[str, Any]:
    return {name: getattr(event, name) for name in PlaybackEventStruct.__struct_fields__}


def model_reading(data: bytes) -> dict[str, Any] | None:
    try:
        return fields(PlaybackEvent.model_validate_json(data))
    except ValidationError:
        return None


@settings(max_examples=400, deadline=None)
@given(event=events())
def test_what_the_fast_decoder_accepts_the_model_accepts_with_the_same_values(
    event: dict[str, Any],
) -> None:
    data = json.dumps(event).encode()
    try:
        fast = fields(msgspec.json.decode(data, type=PlaybackEventStruct))
    except msgspec.ValidationError:
        fast = None
    expected = model_reading(data)
    if fast is not None:
        assert fast == expected
    # Whatever path it takes, the decoder's verdict is the model's.
    try:
        decoded = fields(playback_event_from_json(data))
    except ValidationError:
        decoded = None
    assert decoded == expected


@pytest.mark.parametrize(
    "extra",
    [
        "",
        ', "cdn": {"nested": [1, 2, {"deep": null}]}',
        ', "bitrate_kbps": "2400"',  # the model's lax reading: a number as a string
        ', "bitrate_kbps": 2400.0',
        ', "bitrate_kbps": true',
        ', "position_seconds": "12.5"',
        ', "event_id": "e2"',  # a duplicate key: the last one
        ', "ts": "2026-11-22T03:20:00Z\\n"',
        ', "event_id": "\\ud800"',
        ', "seq": 99999999999999999999999',
        ', "position_seconds": 1e999',
        ', "extra": ' + "[" * 5000 + "]" * 5000,
        ', "event_type": "pause", "startup_ms": 3',
        ', "event_type": "stop", "reason": "completed", "buffer_ms": null',
    ],
)
def test_the_decoder_and_the_model_agree_on_json_edge_cases(extra: str) -> None:
    text = json.dumps(BASELINE)[:-1] + extra + "}"
    data = text.encode()
    try:
        decoded = fields(playback_event_from_json(data))
    except ValidationError:
        decoded = None
    assert decoded == model_reading(data)
