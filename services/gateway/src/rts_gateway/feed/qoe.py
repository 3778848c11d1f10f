"""Quality-of-experience aggregates of one partition of `playback-events`.

Events are keyed by session, so every event of a session lands in one partition, in
order: the replica that owns the partition knows each session's state exactly. Everything
here is a count or a sum per device (or, for startup times, the list of values in a
recent window), so the aggregates of several partitions merge by adding them up: the
browser, or any replica, can total them exactly.

A partition's aggregate outlives its owner: `checkpoint()` is its whole state (counts,
open sessions, recent event ids) after every record below `offset`, and `restore()`
rebuilds it on the next owner, which then reads on from that offset.

The once-a-second snapshot and the checkpoint run in the app context, where every
dashboard waits for them: sessions by state and title are kept up to date as events
arrive (a snapshot costs nothing per session), silent sessions are looked for a slice
at a time, and a checkpoint is encoded in one C call (msgspec) from sessions that are
already its rows. Any checkpoint,
however old, plus the records after it gives the exact state, so the counts run on
across rebalances and crashes from `since`, when the partition's counting began.
Duplicates of an event (a producer that sent it twice) are recognised by `event_id`
among the last `RecentIds.size` events of the partition and not counted again.

Definitions (what streaming services watch):
- stream start: a session's first play (the event with `startup_ms`); startup time is
  that `startup_ms`;
- startup failure: a stop with reason `startup_failure` (the session never played);
- watched time: the time sessions spent in the playing state, from event timestamps;
- rebuffering time: `buffer_ms` of buffering caused by stalls (`buffer_reason`
  rebuffer), not the buffering that follows a seek; rebuffering ratio = rebuffering
  time / watched time;
- bitrate switch: an event with `prev_bitrate_kbps` (up or down);
- concurrent sessions: sessions whose last event left them playing, paused, buffering
  (or seeking); average bitrate: over the playing ones.
"""

from __future__ import annotations

import base64
import collections
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

import msgspec
from rts_common.events import DEVICES, EVENT_TYPES, STOP_REASONS, PlaybackEventStruct
from rts_common.sessions import PlayerState, next_state

WINDOW_NS = 60 * 1_000_000_000
# A session with no event for this long past the end of its title is gone (its stop was
# lost, or the partition moved here mid-session).
SESSION_GRACE_NS = 10 * 60 * 1_000_000_000
MAX_TITLES = 500
# Sessions looked at per snapshot for expiry: a silent session is found within a few
# seconds of its grace running out, and a snapshot never walks them all.
EXPIRY_SLICE = 2000

# The state a session is in after an event, when its earlier events were not seen.
_STATE_AFTER: dict[str, PlayerState] = {
    "play": "playing",
    "pause": "paused",
    "seek": "seeking",
    "buffer_start": "buffering",
    "buffer_end": "playing",
    "stop": "stopped",
}
ACTIVE_STATES: tuple[PlayerState, ...] = ("playing", "paused", "buffering", "seeking")
_ACTIVE = frozenset(ACTIVE_STATES)


# One per open session, replaced (never changed) by each of its events; a checkpoint's row
# as it is (array_like), and untracked by the garbage collector (it holds no object).
class _Session(msgspec.Struct, array_like=True, gc=False):
    session_id: str
    state: PlayerState
    device: str
    movie_id: str
    bitrate_kbps: int
    last_ns: int
    ends_ns: int  # when the title would end if it kept playing from the last event
    buffer_reason: str | None = None


@dataclass
class DeviceTotals:
    """Cumulative counts for one device since the partition's counting began."""

    events: dict[str, int] = field(default_factory=lambda: dict.fromkeys(EVENT_TYPES, 0))
    starts: int = 0
    startup_failures: int = 0
    rebuffer_ms: int = 0
    watched_ms: int = 0
    switches_up: int = 0
    switches_down: int = 0
    stops: dict[str, int] = field(default_factory=lambda: dict.fromkeys(STOP_REASONS, 0))

    def as_json(self) -> dict[str, Any]:
        return {
            "events": dict(self.events),
            "starts": self.starts,
            "startup_failures": self.startup_failures,
            "rebuffer_ms": self.rebuffer_ms,
            "watched_ms": self.watched_ms,
            "bitrate_switches": {"up": self.switches_up, "down": self.switches_down},
            "stops": dict(self.stops),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> DeviceTotals:
        switches = data["bitrate_switches"]
        return cls(
            events={**dict.fromkeys(EVENT_TYPES, 0), **data["events"]},
            starts=data["starts"],
            startup_failures=data["startup_failures"],
            rebuffer_ms=data["rebuffer_ms"],
            watched_ms=data["watched_ms"],
            switches_up=switches["up"],
            switches_down=switches["down"],
            stops={**dict.fromkeys(STOP_REASONS, 0), **data["stops"]},
        )


class RecentIds:
    """The ids of a partition's last `size` events, as 8-byte digests: small enough to
    travel in every checkpoint, and with 20,000 of them a new event matches one by chance
    about once in 10^15 events."""

    DIGEST_BYTES = 8

    def __init__(self, size: int, digests: bytes = b"") -> None:
        self.size = size
        n = self.DIGEST_BYTES
        self._order = collections.deque(digests[i : i + n] for i in range(0, len(digests), n))
        while len(self._order) > size:
            self._order.popleft()
        self._seen = set(self._order)

    def first_time(self, event_id: str) -> bool:
        """Remember `event_id`; False when it is among the last `size` already."""
        if not self.size:
            return True
        digest = hashlib.blake2b(event_id.encode(), digest_size=self.DIGEST_BYTES).digest()
        if digest in self._seen:
            return False
        self._seen.add(digest)
        self._order.append(digest)
        if len(self._order) > self.size:
            self._seen.discard(self._order.popleft())
        return True

    def dump(self) -> str:
        return base64.b64encode(b"".join(self._order)).decode("ascii")

    @classmethod
    def load(cls, size: int, text: str) -> RecentIds:
        return cls(size, base64.b64decode(text))


@dataclass(slots=True)  # one per event: no frozen __init__, no __dict__
class Applied:
    """What one event changed, for the caller's Prometheus counters."""

    device: str
    started: bool = False
    startup_ms: int | None = None
    startup_failed: bool = False
    watched_ms: int = 0
    watched_kbps: int = 0  # the bitrate the session played at during watched_ms
    rebuffer_ms: int = 0
    switch: str | None = None  # "up" or "down"


CHECKPOINT_VERSION = 1


def _no_sessions() -> dict[str, int]:
    return {**dict.fromkeys(ACTIVE_STATES, 0), "bitrate_sum_kbps": 0}


class PartitionAggregate:
    def __init__(self, partition: int, since_ns: int, *, dedupe_window: int = 0) -> None:
        self.partition = partition
        self.since_ns = since_ns
        self.devices: dict[str, DeviceTotals] = {d: DeviceTotals() for d in DEVICES}
        self._sessions: dict[str, _Session] = {}
        # Sessions by device and state, the bitrate of the playing ones, playing sessions
        # per title: kept as sessions change.
        self._active: dict[str, dict[str, int]] = {d: _no_sessions() for d in DEVICES}
        self._titles: collections.Counter[str] = collections.Counter()
        self._to_check: list[str] = []  # sessions left to look at for expiry
        self._startups: collections.deque[tuple[int, str, int]] = collections.deque()
        self.recent = RecentIds(dedupe_window)
        self.events_seen = 0
        # The partition's offset after the last record applied (0: none yet).
        self.offset = 0

    def apply(self, event: PlaybackEventStruct, ts_ns: int) -> Applied:
        totals = self.devices[event.device]
        totals.events[event.event_type] += 1
        self.events_seen += 1
        session = self._sessions.get(event.session_id)
        if session is not None:
            self._count(session, -1)
        previous: PlayerState = session.state if session else "starting"
        watched_ms = watched_kbps = 0
        if session is not None and session.state == "playing":
            watched_ms = max(0, (ts_ns - session.last_ns) // 1_000_000)
            watched_kbps = session.bitrate_kbps
            totals.watched_ms += watched_ms
        state = next_state(previous, event.event_type) if session else None
        if state is None:
            # First event seen of a session already under way, or one the contract does
            # not expect here: the event alone says where the player is now.
            state = _STATE_AFTER[event.event_type]
        started = event.startup_ms is not None
        if started:
            totals.starts += 1
            self._startups.append((ts_ns, event.device, event.startup_ms or 0))
        rebuffer_ms = 0
        if event.buffer_ms is not None:
            reason = event.buffer_reason or (session.buffer_reason if session else None)
            if reason == "rebuffer":
                rebuffer_ms = event.buffer_ms
                totals.rebuffer_ms += rebuffer_ms
        switch = None
        if event.prev_bitrate_kbps is not None:
            switch = "up" if event.bitrate_kbps > event.prev_bitrate_kbps else "down"
            if switch == "up":
                totals.switches_up += 1
            else:
                totals.switches_down += 1
        failed = False
        if event.event_type == "stop":
            if event.reason is not None:
                totals.stops[event.reason] += 1
            failed = event.reason == "startup_failure"
            totals.startup_failures += failed
            self._sessions.pop(event.session_id, None)
        else:
            remaining = (event.title_duration_seconds or 0) - event.position_seconds
            now = self._sessions[event.session_id] = _Session(
                event.session_id,
                state,
                event.device,
                event.movie_id,
                event.bitrate_kbps,
                ts_ns,
                ts_ns + int(max(0.0, remaining) * 1e9),
                event.buffer_reason
                if event.event_type == "buffer_start"
                else (session.buffer_reason if session else None),
            )
            self._count(now, 1)
        return Applied(
            device=event.device,
            started=started,
            startup_ms=event.startup_ms,
            startup_failed=failed,
            watched_ms=watched_ms,
            watched_kbps=watched_kbps,
            rebuffer_ms=rebuffer_ms,
            switch=switch,
        )

    def _count(self, session: _Session, sign: int) -> None:
        """Add (1) or take away (-1) a session in the counts by state and title."""
        state = session.state
        if state not in _ACTIVE:
            return
        active = self._active[session.device]
        active[state] += sign
        if state == "playing":
            active["bitrate_sum_kbps"] += sign * session.bitrate_kbps
            titles, movie = self._titles, session.movie_id
            titles[movie] += sign
            if not titles[movie]:
                del titles[movie]

    def expire(self, now_ns: int, limit: int | None = None) -> int:
        """Forget sessions silent long past their title's end; returns how many. With
        `limit`, only that many sessions are looked at, where the last call stopped."""
        if limit is None:
            keys = list(self._sessions)
        else:
            if not self._to_check:
                self._to_check = list(self._sessions)
            keys = self._to_check[-limit:]
            del self._to_check[-limit:]
        gone = 0
        for sid in keys:
            session = self._sessions.get(sid)
            if session is not None and now_ns > session.ends_ns + SESSION_GRACE_NS:
                del self._sessions[sid]
                self._count(session, -1)
                gone += 1
        cutoff = now_ns - WINDOW_NS
        while self._startups and self._startups[0][0] < cutoff:
            self._startups.popleft()
        return gone

    def concurrent(self) -> dict[str, dict[str, int]]:
        """Sessions per device and state, plus the bitrate sum of the playing ones."""
        return {d: dict(self._active[d]) for d in DEVICES}

    def titles(self) -> dict[str, int]:
        """Playing sessions per title (the catalogue is bounded; the count is capped anyway)."""
        return dict(self._titles.most_common(MAX_TITLES))

    def snapshot(self, now_ns: int, owner: str) -> dict[str, Any]:
        """The partition's aggregate as emitted once a second; merge by adding fields up.
        `offset`: every record of the partition below it is counted here."""
        self.expire(now_ns, EXPIRY_SLICE)
        concurrent = self.concurrent()
        startups: dict[str, list[int]] = {d: [] for d in DEVICES}
        for _ts, device, ms in self._startups:
            startups[device].append(ms)
        return {
            "partition": self.partition,
            "owner": owner,
            "since": self.since_ns,
            "offset": self.offset,
            "ts": now_ns,
            "devices": {
                d: {**self.devices[d].as_json(), **concurrent[d], "startup_ms_window": startups[d]}
                for d in DEVICES
            },
            "titles": self.titles(),
        }

    # -- checkpoints

    def checkpoint(self, now_ns: int, owner: str) -> bytes:
        """The whole state as JSON: what `restore` needs to carry on exactly. Each
        session is a row [id, state, device, title, kbps, last_ns, ends_ns, reason]."""
        state = {
            "version": CHECKPOINT_VERSION,
            "partition": self.partition,
            "offset": self.offset,
            "since": self.since_ns,
            "ts": now_ns,
            "owner": owner,
            "events_seen": self.events_seen,
            "devices": {d: totals.as_json() for d, totals in self.devices.items()},
            "sessions": list(self._sessions.values()),
            "startups": list(self._startups),
            "recent_ids": self.recent.dump(),
        }
        return msgspec.json.encode(state)

    @classmethod
    def restore(cls, data: bytes, *, dedupe_window: int) -> PartitionAggregate:
        """The aggregate a checkpoint holds; ValueError (or KeyError) when it is not one."""
        state = json.loads(data)
        if state.get("version") != CHECKPOINT_VERSION:
            raise ValueError(f"checkpoint version {state.get('version')!r}")
        aggregate = cls(int(state["partition"]), int(state["since"]))
        aggregate.offset = int(state["offset"])
        aggregate.events_seen = int(state["events_seen"])
        for device, totals in state["devices"].items():
            if device in aggregate.devices:
                aggregate.devices[device] = DeviceTotals.from_json(totals)
        for sid, st, device, movie, kbps, last_ns, ends_ns, reason in state["sessions"]:
            session = _Session(sid, st, device, movie, kbps, last_ns, ends_ns, reason)
            aggregate._sessions[sid] = session
            aggregate._count(session, 1)
        aggregate._startups.extend((ts, device, ms) for ts, device, ms in state["startups"])
        aggregate.recent = RecentIds.load(dedupe_window, state["recent_ids"])
        return aggregate


_SUMMED = (
    "starts",
    "startup_failures",
    "rebuffer_ms",
    "watched_ms",
    "playing",
    "paused",
    "buffering",
    "seeking",
    "bitrate_sum_kbps",
)


def merge(snapshots: list[dict[str, Any]]) -> dict[str, Any]:
    """Totals over partitions' snapshots (the same arithmetic the dashboard does)."""
    total: dict[str, Any] = {
        "events": dict.fromkeys(EVENT_TYPES, 0),
        "starts": 0,
        "startup_failures": 0,
        "rebuffer_ms": 0,
        "watched_ms": 0,
        "bitrate_switches": {"up": 0, "down": 0},
        "playing": 0,
        "paused": 0,
        "buffering": 0,
        "seeking": 0,
        "bitrate_sum_kbps": 0,
        "startup_ms_window": [],
        "titles": collections.Counter(),
    }
    for snap in snapshots:
        for device in snap["devices"].values():
            for kind, n in device["events"].items():
                total["events"][kind] += n
            for key in _SUMMED:
                total[key] += device[key]
            for direction in ("up", "down"):
                total["bitrate_switches"][direction] += device["bitrate_switches"][direction]
            total["startup_ms_window"] += device["startup_ms_window"]
        total["titles"].update(snap["titles"])
    total["titles"] = dict(total["titles"].most_common())
    playing = total["playing"]
    total["average_bitrate_kbps"] = total["bitrate_sum_kbps"] / playing if playing else None
    watched = total["watched_ms"]
    total["rebuffering_ratio"] = total["rebuffer_ms"] / watched if watched else None
    startups = sorted(total["startup_ms_window"])
    total["startup_ms_p50"] = percentile(startups, 0.50)
    total["startup_ms_p95"] = percentile(startups, 0.95)
    return total


def percentile(values: list[int], q: float) -> float | None:
    """Nearest-rank percentile of sorted values (exact: one of the values)."""
    if not values:
        return None
    rank = max(1, -(-len(values) * q // 1))  # ceil(n*q), at least 1
    return float(values[int(rank) - 1])
