"""Simulated viewers and their playback sessions, on a simulated clock: the pacing.

Two clocks. Viewers live on the *viewer clock*: each plans its next action (a session
start, or its session's next event) a lifelike delay after its previous one, and the
plans are carried out one at a time, earliest first. The *event clock* gives event k the
timestamp `start + k / rate`, so the stream holds the requested rate exactly, and every
session stays consistent with its own timestamps: the playhead advances exactly as `ts`
does while playing, and `buffer_ms` is the time between the `ts` of `buffer_start` and
`buffer_end`. `pace` is how many viewer seconds pass per event second: 1 when there are
enough viewers for the rate (about `rate` x 100, see `Behaviour`); above 1, fewer viewers
are acting busier than in life, every delay shortened by the same factor; below 1, more
viewers are slowed down. What a session does at each action, and how long it waits for
the next, is its state machine's (sessions.py).

Randomness: everything comes from one `random.Random(seed)`, drawn in event order and
only through `random()` (whose stream CPython keeps stable across versions): the same
seed and settings give the same events, byte for byte.
"""

from __future__ import annotations

import hashlib
import math
import time
from bisect import bisect
from dataclasses import dataclass, field
from heapq import heapify, heappop, heappush
from itertools import accumulate
from typing import NamedTuple

from rts_common.events import EventType

from rts_eventsim.sessions import (
    MS,
    NS,
    STOPPED,
    Behaviour,
    DeviceProfile,
    Draws,
    Session,
    SessionMachine,
    Viewer,
)


@dataclass(frozen=True)
class SimConfig:
    seed: int
    rate: float  # events per simulated second
    users: int
    titles: int
    start_ns: int  # the simulated clock's origin, ns since the epoch
    behaviour: Behaviour = field(default_factory=Behaviour)


class Emitted(NamedTuple):
    key: str  # the session id
    value: bytes  # the event as JSON
    event_type: EventType


def run_id(seed: int, start_ns: int) -> str:
    """Prefix of event and session ids: the same for a repeated run, distinct otherwise."""
    return hashlib.blake2b(f"{seed}:{start_ns}".encode(), digest_size=6).hexdigest()


class Simulator:
    """Produces the event stream, one `next_event()` per tick of the simulated clock."""

    def __init__(self, config: SimConfig) -> None:
        if config.rate <= 0 or config.users < 1 or config.titles < 1:
            raise ValueError("rate, users and titles must be positive")
        self.config = config
        self.behaviour = b = config.behaviour
        self._draws = Draws(config.seed)
        self._random = self._draws.random
        self._sessions = SessionMachine(b, self._draws)
        self._run = run_id(config.seed, config.start_ns)
        # The clock in integer arithmetic (rate in millievents/s), so tick k's time is exact.
        self._rate_milli = max(1, round(config.rate * 1000))
        self.ticks = 0  # ticks elapsed: events emitted plus ticks skipped
        # Both clocks count ns from the start; only timestamps add the origin.
        self.set_origin(config.start_ns)
        self.events = 0
        self.sessions_started = 0
        self.sessions_active = 0
        self.viewer_ns = 0  # the viewer clock: when the last plan was due
        self.pace = 1.0
        self._pace_from = (0, 0)

        self._movie_ids = [f"MOV{i + 1:03d}" for i in range(config.titles)]
        self._durations = [self._title_duration() for _ in range(config.titles)]
        weights = (1.0 / (rank + 1) ** b.zipf_exponent for rank in range(config.titles))
        self._title_cum = list(accumulate(weights))
        self._device_cum = list(accumulate(d.share for d in b.devices))
        self._viewers = [Viewer(f"user_{i + 1}", self._pick_device()) for i in range(config.users)]
        # Plans: (due ns, tie-breaker, viewer). The tie-breaker keeps the order of equal
        # due times deterministic and never compares viewers.
        self._order = 0
        self._plans: list[tuple[int, int, Viewer]] = []
        # Viewers tune in over the time their starts would take at half the rate, so from
        # the first minute on, starts share the stream with the events of the sessions
        # already playing instead of filling it.
        tune_in_ns = 2 * config.users / config.rate * NS
        for viewer in self._viewers:
            self._plans.append((int(self._random() * tune_in_ns), self._order, viewer))
            self._order += 1
        heapify(self._plans)
        self._ts_second = -1
        self._ts_prefix = ""

    # -- the event clock

    def set_origin(self, start_ns: int) -> None:
        """Set the clock's origin (ns since the epoch); only before the first event.

        A paced run sets it when its loop starts, so building a million viewers does not
        leave the timestamps that far behind the wall clock.
        """
        if self.ticks:
            raise RuntimeError("the clock's origin is fixed once events were produced")
        # Whole microseconds, the precision of `ts`: a rerun from another start time then
        # gives the same timestamps shifted by exactly the difference.
        self._origin_ns = start_ns - start_ns % 1000

    @property
    def now_ns(self) -> int:
        """The simulated time of the next tick, ns since the epoch."""
        return self._origin_ns + self.ticks * NS * 1000 // self._rate_milli

    @property
    def elapsed_s(self) -> float:
        """Simulated seconds since the start."""
        return self.ticks * 1000 / self._rate_milli

    def ticks_until(self, seconds: float) -> int:
        """Events left before the simulated clock reaches `seconds` after the start."""
        return max(0, math.ceil(seconds * self._rate_milli / 1000 - 1e-9) - self.ticks)

    def skip(self, ticks: int) -> None:
        """Let the clock pass `ticks` without events (a paced run that fell behind)."""
        self.ticks += ticks

    # -- events, one per tick: the viewer whose plan is due next acts

    def next_event(self) -> Emitted:
        now = self.ticks * NS * 1000 // self._rate_milli
        self.ticks += 1
        due, _, viewer = heappop(self._plans)
        self.viewer_ns = due
        session = viewer.session
        if session is None:
            session = self._new_session(viewer)
        event_type, extra = self._sessions.step(session, now)
        value = self._encode(session, now, event_type, extra)
        session.last_ns = now
        self.events += 1
        self._plan(viewer, session, due)
        if not self.events & 0xFFF:
            self._update_pace(now)
        return Emitted(session.session_id, value, event_type)

    def _update_pace(self, now: int) -> None:
        ticks, viewer_ns = self._pace_from
        event_ns = now - ticks * NS * 1000 // self._rate_milli
        if event_ns > 0:
            self.pace = (self.viewer_ns - viewer_ns) / event_ns
        self._pace_from = (self.ticks, self.viewer_ns)

    # -- the viewer clock

    def _plan(self, viewer: Viewer, s: Session, due: int) -> None:
        """Plan the viewer's next action on the viewer clock, `due` being this one's plan."""
        if s.state == STOPPED:  # the viewer idles, then starts another session
            viewer.session = None
            self.sessions_active -= 1
        delay = self._sessions.delay_ns(s)
        heappush(self._plans, (due + max(1, delay), self._order, viewer))
        self._order += 1

    # -- the viewers and the catalogue

    def _new_session(self, viewer: Viewer) -> Session:
        b = self.behaviour
        title = bisect(self._title_cum, self._random() * self._title_cum[-1])
        title = min(title, len(self._title_cum) - 1)
        home = self._random() < b.home_device_share
        device = viewer.home if home else self._pick_device()
        capacity = self._draws.lognormal(device.capacity_median_kbps, b.capacity_sigma)
        duration_s = self._durations[title]
        position_ns = 0
        if self._random() < b.resume_share:
            position_ns = int((0.1 + 0.8 * self._random()) * duration_s) * NS
        self.sessions_started += 1
        self.sessions_active += 1
        session = Session(
            session_id=f"ses-{self._run}-{self.sessions_started}",
            user_id=viewer.user_id,
            movie_id=self._movie_ids[title],
            duration_s=duration_s,
            device=device,
            capacity=capacity,
            rung=min(b.initial_rung, device.top_rung),
            position_ns=position_ns,
        )
        viewer.session = session
        return session

    def _pick_device(self) -> DeviceProfile:
        index = bisect(self._device_cum, self._random() * self._device_cum[-1])
        return self.behaviour.devices[min(index, len(self.behaviour.devices) - 1)]

    def _title_duration(self) -> int:
        if self._random() < self.behaviour.episode_share:
            return int(20 * 60 + 40 * 60 * self._random())
        return int(80 * 60 + 80 * 60 * self._random())

    # -- encoding

    def _encode(self, s: Session, now: int, event_type: EventType, extra: str) -> bytes:
        """The event as JSON, written directly: every value is one of our own ASCII ids or a
        number, so nothing needs escaping, and this is several times cheaper than json.dumps
        (the tests parse and validate every event)."""
        s.seq += 1
        second, rest = divmod(self._origin_ns + now, NS)
        if second != self._ts_second:
            self._ts_second = second
            self._ts_prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        position_ms = s.position_ns // MS
        value = (
            f'{{"event_id":"evt-{self._run}-{self.ticks - 1}","user_id":"{s.user_id}",'
            f'"movie_id":"{s.movie_id}","event_type":"{event_type}",'
            f'"position_seconds":{position_ms // 1000}.{position_ms % 1000:03d},'
            f'"bitrate_kbps":{s.bitrate},"device":"{s.device.name}",'
            f'"ts":"{self._ts_prefix}.{rest // 1000:06d}Z","session_id":"{s.session_id}",'
            f'"seq":{s.seq},"title_duration_seconds":{s.duration_s}{extra}}}'
        )
        return value.encode("ascii")
