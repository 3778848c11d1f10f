from typing import Any

import pytest
from rts_common.events import PlaybackEvent
from rts_common.sessions import SessionCheck, check_sessions, next_state


def session(*steps: tuple[str, float, float, dict[str, Any]]) -> list[PlaybackEvent]:
    """Events of one session from (event_type, seconds after start, position, extra)."""
    out = []
    for seq, (event_type, at, position, fields) in enumerate(steps, start=1):
        extra = dict(fields)
        whole, frac = divmod(at, 1)
        out.append(
            PlaybackEvent.model_validate(
                {
                    "event_id": f"e{seq}",
                    "user_id": "user_1",
                    "movie_id": "MOV001",
                    "event_type": event_type,
                    "position_seconds": position,
                    "bitrate_kbps": extra.pop("bitrate", 2400),
                    "device": "tv",
                    "ts": f"2027-01-01T00:{int(whole) // 60:02d}:{int(whole) % 60:02d}"
                    f".{round(frac * 1e6):06d}Z",
                    "session_id": "s-1",
                    "seq": seq,
                    "title_duration_seconds": 600,
                    **extra,
                }
            )
        )
    return out


VALID = [
    ("play", 0, 100, {"startup_ms": 900}),
    ("play", 10, 110, {"bitrate": 4800, "prev_bitrate_kbps": 2400}),
    ("pause", 20, 120, {"bitrate": 4800}),
    ("play", 50, 120, {"bitrate": 4800}),
    ("seek", 60, 30, {"bitrate": 4800}),
    ("buffer_start", 60.1, 30, {"bitrate": 4800, "buffer_reason": "seek"}),
    ("buffer_end", 60.6, 30, {"bitrate": 4800, "buffer_reason": "seek", "buffer_ms": 500}),
    ("buffer_start", 70.6, 40, {"bitrate": 4800, "buffer_reason": "rebuffer"}),
    (
        "buffer_end",
        73.6,
        40,
        {
            "bitrate": 2400,
            "prev_bitrate_kbps": 4800,
            "buffer_reason": "rebuffer",
            "buffer_ms": 3000,
        },
    ),
    ("stop", 633.6, 600, {"reason": "completed"}),
]


def test_a_lifelike_session_satisfies_the_contract() -> None:
    assert SessionCheck().feed_all(session(*VALID)) == []


def test_a_startup_failure_is_a_lone_stop() -> None:
    assert SessionCheck().feed_all(session(("stop", 5, 0, {"reason": "startup_failure"}))) == []


@pytest.mark.parametrize(
    ("steps", "problem"),
    [
        ([("pause", 0, 0, {})], "pause is not allowed when starting"),
        (
            [*VALID[:1], ("buffer_end", 5, 105, {"buffer_reason": "rebuffer", "buffer_ms": 1})],
            "buffer_end is not allowed when playing",
        ),
        ([*VALID[:1], ("pause", 5, 99, {})], "position moved -1.000s while playing 5.000s"),
        ([*VALID[:3], ("play", 30, 125, {"bitrate": 4800})], "position moved 5.000s while paused"),
        ([*VALID, ("play", 700, 600, {})], "play is not allowed when stopped"),
        ([*VALID[:1], ("play", 5, 105, {})], "a play while playing must be a bitrate switch"),
        ([*VALID[:1], ("pause", 5, 105, {"bitrate": 1200})], "without prev_bitrate_kbps"),
        (
            [*VALID[:7], ("buffer_start", 61, 30.4, {"bitrate": 4800, "buffer_reason": "seek"})],
            "buffering after playing has buffer_reason rebuffer",
        ),
        (
            [
                *VALID[:8],
                (
                    "buffer_end",
                    72,
                    40,
                    {"bitrate": 4800, "buffer_reason": "rebuffer", "buffer_ms": 3000},
                ),
            ],
            "buffer_ms 3000 but buffering lasted 1400 ms",
        ),
        ([*VALID[:1], ("stop", 5, 105, {"reason": "completed"})], "completed stops at the title"),
        ([*VALID[:1], ("stop", 5, 105, {"reason": "startup_failure"})], "startup_failure is"),
        ([("play", 0, 0, {})], "startup_ms belongs on the first play"),
    ],
)
def test_broken_sessions_are_caught(steps: list[Any], problem: str) -> None:
    violations = SessionCheck().feed_all(session(*steps))
    assert any(problem in v for v in violations), violations


def test_sequence_gaps_and_interleaved_sessions() -> None:
    events = session(*VALID)
    assert check_sessions([events[0], *events[2:]])["s-1"][0].startswith("seq 3 pause: seq should")
    other = [e.model_copy(update={"session_id": "s-2"}) for e in events]
    interleaved = [e for pair in zip(events, other, strict=True) for e in pair]
    assert check_sessions(interleaved) == {}


def test_the_state_machine_tells_playing_paused_and_buffering_apart() -> None:
    state = "starting"
    seen = []
    for event_type in ("play", "pause", "play", "seek", "buffer_start", "buffer_end", "stop"):
        state = next_state(state, event_type)  # type: ignore[arg-type]
        seen.append(state)
    assert seen == ["playing", "paused", "playing", "seeking", "buffering", "playing", "stopped"]
    assert next_state("paused", "pause") is None
    assert next_state("stopped", "play") is None
