import pytest
from pydantic import ValidationError
from rts_common.events import PlaybackEvent

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


def test_a_baseline_shaped_event_with_session_is_valid_and_keeps_extra_fields() -> None:
    event = PlaybackEvent.model_validate({**BASELINE, "startup_ms": 830})
    assert event.event_type == "play"
    assert event.model_dump()["startup_ms"] == 830


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("event_type", "rewind"),
        ("device", "fridge"),
        ("ts", "2026-11-22 03:20:00"),
        ("position_seconds", -1),
        ("bitrate_kbps", 0),
    ],
)
def test_events_breaking_the_contract_are_rejected(field: str, value: object) -> None:
    with pytest.raises(ValidationError):
        PlaybackEvent.model_validate({**BASELINE, field: value})


def test_session_id_is_required() -> None:
    with pytest.raises(ValidationError):
        PlaybackEvent.model_validate({k: v for k, v in BASELINE.items() if k != "session_id"})
