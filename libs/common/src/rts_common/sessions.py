"""The playback session contract: which event may follow which, and what a session's
sequence numbers, positions, bitrates and durations must satisfy.

`next_state` is the player state machine a consumer needs to know, exactly per
partition, how many sessions are playing, paused or buffering. `SessionCheck` holds a
producer to the whole contract, one session at a time (the event-sim's tests run every
generated session through it).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Literal

from rts_common.events import EventType, PlaybackEvent, ts_to_ns

PlayerState = Literal["starting", "playing", "paused", "seeking", "buffering", "stopped"]

# A session starts with a play (its first frame) or with a stop (startup failure). A seek
# is always followed by the buffering that refills the player, and a seek or a resume only
# happens from where the table allows, so "playing/paused/buffering" is a function of the
# last event alone. Stop is final.
TRANSITIONS: Mapping[PlayerState, Mapping[EventType, PlayerState]] = MappingProxyType(
    {
        "starting": {"play": "playing", "stop": "stopped"},
        "playing": {
            "play": "playing",  # only as a bitrate step up (prev_bitrate_kbps set)
            "pause": "paused",
            "seek": "seeking",
            "buffer_start": "buffering",
            "stop": "stopped",
        },
        "paused": {"play": "playing", "stop": "stopped"},
        "seeking": {"buffer_start": "buffering", "stop": "stopped"},
        "buffering": {"buffer_end": "playing", "stop": "stopped"},
        "stopped": {},
    }
)


def next_state(state: PlayerState, event_type: EventType) -> PlayerState | None:
    """The player's state after `event_type`, or None when the contract forbids it there."""
    return TRANSITIONS[state].get(event_type)


# Positions are written with millisecond precision and ts with microseconds.
POSITION_TOLERANCE = 0.0015


@dataclass
class SessionCheck:
    """Feed one session's events in order; each call returns what the event breaks."""

    state: PlayerState = "starting"
    last: PlaybackEvent | None = None
    last_ns: int = 0
    buffer_start: PlaybackEvent | None = None
    buffer_start_ns: int = 0
    events: int = 0
    violations: list[str] = field(default_factory=list)

    def feed(self, event: PlaybackEvent) -> list[str]:
        problems = list(self._problems(event))
        self.violations += [f"seq {event.seq} {event.event_type}: {p}" for p in problems]
        return problems

    def feed_all(self, events: Iterable[PlaybackEvent]) -> list[str]:
        for event in events:
            self.feed(event)
        return self.violations

    def _problems(self, event: PlaybackEvent) -> Iterable[str]:  # noqa: PLR0912, PLR0915
        now_ns = ts_to_ns(event.ts)
        last, state = self.last, self.state
        after = next_state(state, event.event_type)
        if after is None:
            yield f"{event.event_type} is not allowed when {state}"
        if event.seq != self.events + 1:
            yield f"seq should be {self.events + 1}"
        if last is not None:
            for name in ("session_id", "user_id", "movie_id", "device", "title_duration_seconds"):
                if getattr(event, name) != getattr(last, name):
                    yield f"{name} changed within the session"
            if now_ns < self.last_ns:
                yield "ts went backwards"
        duration = event.title_duration_seconds
        if duration is not None and event.position_seconds > duration + POSITION_TOLERANCE:
            yield f"position {event.position_seconds} beyond the title's end {duration}"

        first_play = state == "starting" and event.event_type == "play"
        if first_play != (event.startup_ms is not None):
            yield "startup_ms belongs on the first play, and only there"
        if event.event_type == "play" and state == "playing" and event.prev_bitrate_kbps is None:
            yield "a play while playing must be a bitrate switch"
        previous_bitrate = last.bitrate_kbps if last is not None else event.bitrate_kbps
        if previous_bitrate not in (event.bitrate_kbps, event.prev_bitrate_kbps):
            yield f"bitrate changed from {previous_bitrate} without prev_bitrate_kbps"
        if event.bitrate_kbps == previous_bitrate and event.prev_bitrate_kbps is not None:
            yield "prev_bitrate_kbps without a bitrate change"

        if last is not None and event.event_type != "seek":
            moved = event.position_seconds - last.position_seconds
            if state == "playing":
                expected = (now_ns - self.last_ns) / 1e9
                if duration is not None:
                    expected = min(expected, duration - last.position_seconds)
                if abs(moved - expected) > POSITION_TOLERANCE:
                    yield f"position moved {moved:.3f}s while playing {expected:.3f}s"
            elif abs(moved) > POSITION_TOLERANCE:
                yield f"position moved {moved:.3f}s while {state}"

        if event.event_type in ("buffer_start", "buffer_end") and event.buffer_reason is None:
            yield "buffer events carry buffer_reason"
        if event.event_type == "buffer_start":
            wanted = "seek" if state == "seeking" else "rebuffer"
            if event.buffer_reason != wanted:
                yield f"buffering after {state} has buffer_reason {wanted}"
        ends_buffering = state == "buffering" and event.event_type in ("buffer_end", "stop")
        if ends_buffering and self.buffer_start is not None:
            same_reason = event.buffer_reason == self.buffer_start.buffer_reason
            if event.event_type == "buffer_end" and not same_reason:
                yield "buffer_end's buffer_reason differs from its buffer_start's"
            waited_ms = (now_ns - self.buffer_start_ns) // 1_000_000
            if event.buffer_ms is None or abs(event.buffer_ms - waited_ms) > 1:
                yield f"buffer_ms {event.buffer_ms} but buffering lasted {waited_ms} ms"
        elif event.buffer_ms is not None:
            yield "buffer_ms only ends a buffering"

        if event.event_type == "stop":
            if event.reason is None:
                yield "stop carries a reason"
            if (event.reason == "startup_failure") != (state == "starting"):
                yield "startup_failure is exactly a stop before the first play"
            if event.reason == "completed" and (
                duration is None or abs(event.position_seconds - duration) > POSITION_TOLERANCE
            ):
                yield "completed stops at the title's end"

        if event.event_type == "buffer_start":
            self.buffer_start, self.buffer_start_ns = event, now_ns
        self.state = after or state
        self.last, self.last_ns = event, now_ns
        self.events += 1


def check_sessions(events: Iterable[PlaybackEvent]) -> dict[str, list[str]]:
    """Violations per session of an event stream (sessions interleaved, each in order)."""
    checks: dict[str, SessionCheck] = {}
    for event in events:
        checks.setdefault(event.session_id, SessionCheck()).feed(event)
    return {sid: check.violations for sid, check in checks.items() if check.violations}
