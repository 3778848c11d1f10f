"""Simulated viewers and their playback sessions, on a simulated clock.

Two clocks. Viewers live on the *viewer clock*: each plans its next action (a session
start, or its session's next event) a lifelike delay after its previous one, and the
plans are carried out one at a time, earliest first. The *event clock* gives event k the
timestamp `start + k / rate`, so the stream holds the requested rate exactly, and every
session stays consistent with its own timestamps: the playhead advances exactly as `ts`
does while playing, and `buffer_ms` is the time between the `ts` of `buffer_start` and
`buffer_end`. `pace` is how many viewer seconds pass per event second: 1 when there are
enough viewers for the rate (about `rate` x 100, see `Behaviour`); above 1, fewer viewers
are acting busier than in life, every delay shortened by the same factor; below 1, more
viewers are slowed down.

Randomness: everything comes from one `random.Random(seed)`, drawn in event order and
only through `random()` (whose stream CPython keeps stable across versions): the same
seed and settings give the same events, byte for byte.
"""

from __future__ import annotations

import hashlib
import math
import random
import time
from bisect import bisect
from dataclasses import dataclass, field
from heapq import heapify, heappop, heappush
from itertools import accumulate
from typing import NamedTuple

from rts_common.events import Device, EventType

NS = 1_000_000_000
MS = 1_000_000

# Rendition ladder (kbps), shared by every title; devices cap how high they climb.
LADDER = (600, 1200, 2400, 4800, 8000)

# Internal player states (ints: they are compared on every event).
STARTING, PLAYING, PAUSED, SEEKING, BUFFERING, STOPPED = range(6)


@dataclass(frozen=True)
class DeviceProfile:
    name: Device
    share: float  # of sessions
    top_rung: int  # highest LADDER index the device plays
    capacity_median_kbps: float  # network throughput, log-normal per session
    startup_median_ms: float
    startup_failure: float  # probability that a start never plays


@dataclass(frozen=True)
class Behaviour:
    """How viewers and players behave. Rates are per second of the state they apply to.

    With these values a session reports an event about every 90 s of watching (more
    often while its player climbs the bitrate ladder), and viewers idle a minute or so
    between sessions: a lifelike pace (`Simulator.pace` near 1) needs about 100 viewers
    per event per second.
    """

    devices: tuple[DeviceProfile, ...] = (
        DeviceProfile("tv", 0.45, 4, 16_000.0, 1100.0, 0.012),
        DeviceProfile("web", 0.30, 3, 9_000.0, 700.0, 0.010),
        DeviceProfile("mobile", 0.25, 2, 4_000.0, 1300.0, 0.025),
    )
    capacity_sigma: float = 0.7
    home_device_share: float = 0.8  # sessions on the viewer's usual device
    initial_rung: int = 1
    zipf_exponent: float = 1.1  # title popularity: a few hits, a long tail
    episode_share: float = 0.55  # titles of 20-60 min; the rest are 80-160 min films
    resume_share: float = 0.3  # sessions that resume a title part-watched

    startup_sigma: float = 0.45
    slow_network_failure: float = 0.08  # extra startup failures below 1 Mbps

    # while playing
    pause_rate: float = 1 / 900
    seek_rate: float = 1 / 1200
    abandon_rate: float = 1 / 7200
    early_abandon_rate: float = 1 / 900  # viewers sampling a title leave early...
    early_window_s: float = 120.0  # ...within their first two minutes of watching
    error_rate: float = 1 / 200_000
    step_up_rate: float = 1 / 20  # when the next rung fits the network...
    step_up_headroom: float = 0.75  # ...with this much headroom
    rebuffer_base_rate: float = 1 / 3600
    rebuffer_stress_rate: float = 1 / 120  # x (bitrate / capacity) ** rebuffer_exponent
    rebuffer_exponent: float = 6.0

    # the other states' durations (seconds, log-normal median and sigma)
    pause_median_s: float = 20.0
    pause_sigma: float = 1.2
    resume_share_after_pause: float = 0.94  # the others leave while paused
    seek_to_buffer_s: tuple[float, float] = (0.03, 0.15)
    seek_buffer_median_s: float = 0.6
    rebuffer_median_s: float = 3.0
    buffer_sigma: float = 0.9
    abandon_in_rebuffer: float = 0.04
    idle_median_s: float = 60.0  # between a viewer's sessions
    idle_sigma: float = 1.0


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


class Viewer:
    __slots__ = ("home", "session", "user_id")

    def __init__(self, user_id: str, home: DeviceProfile) -> None:
        self.user_id = user_id
        self.home = home
        self.session: Session | None = None


class Session:
    __slots__ = (
        "bitrate",
        "buffer_reason",
        "buffer_start_ns",
        "capacity",
        "device",
        "duration_ns",
        "duration_s",
        "last_ns",
        "movie_id",
        "played_ns",
        "position_ns",
        "rung",
        "seq",
        "session_id",
        "state",
        "user_id",
    )

    def __init__(
        self,
        *,
        session_id: str,
        user_id: str,
        movie_id: str,
        duration_s: int,
        device: DeviceProfile,
        capacity: float,
        rung: int,
        position_ns: int,
    ) -> None:
        self.session_id = session_id
        self.user_id = user_id
        self.movie_id = movie_id
        self.duration_s = duration_s
        self.duration_ns = duration_s * NS
        self.device = device
        self.capacity = capacity
        self.rung = rung
        self.bitrate = LADDER[rung]
        self.position_ns = position_ns
        self.state = STARTING
        self.seq = 0
        self.last_ns = 0
        self.played_ns = 0
        self.buffer_start_ns = 0
        self.buffer_reason = ""


class Simulator:
    """Produces the event stream, one `next_event()` per tick of the simulated clock."""

    def __init__(self, config: SimConfig) -> None:
        if config.rate <= 0 or config.users < 1 or config.titles < 1:
            raise ValueError("rate, users and titles must be positive")
        self.config = config
        self.behaviour = b = config.behaviour
        self._rng = random.Random(config.seed)  # noqa: S311 - a simulation, not secrets
        self._random = self._rng.random
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

    # -- the clock

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

    # -- events

    def next_event(self) -> Emitted:
        now = self.ticks * NS * 1000 // self._rate_milli
        self.ticks += 1
        due, _, viewer = heappop(self._plans)
        self.viewer_ns = due
        session = viewer.session
        if session is None:
            session = self._new_session(viewer)
            value, event_type = self._start(session, now)
        elif session.state == PLAYING:
            value, event_type = self._playing(session, now)
        elif session.state == PAUSED:
            value, event_type = self._paused(session, now)
        elif session.state == SEEKING:
            value, event_type = self._encode(
                session, now, "buffer_start", ',"buffer_reason":"seek"'
            )
            session.state = BUFFERING
            session.buffer_start_ns = now
            session.buffer_reason = "seek"
        else:  # BUFFERING: the only other state a planned session can be in
            value, event_type = self._buffering(session, now)
        session.last_ns = now
        self.events += 1
        self._plan(viewer, session, due)
        if not self.events & 0xFFF:
            self._update_pace(now)
        return Emitted(session.session_id, value, event_type)

    def _start(self, s: Session, now: int) -> tuple[bytes, EventType]:
        b = self.behaviour
        failure = s.device.startup_failure + (b.slow_network_failure if s.capacity < 1000 else 0)
        if self._random() < failure:
            s.state = STOPPED
            return self._encode(s, now, "stop", ',"reason":"startup_failure"')
        # Slow networks take longer to fill the first segment.
        median = s.device.startup_median_ms * (1 + 1000 / s.capacity)
        startup_ms = min(30_000, max(80, round(self._lognormal(median, b.startup_sigma))))
        s.state = PLAYING
        return self._encode(s, now, "play", f',"startup_ms":{startup_ms}')

    def _playing(self, s: Session, now: int) -> tuple[bytes, EventType]:
        b = self.behaviour
        played = now - s.last_ns
        s.played_ns += played
        s.position_ns = min(s.duration_ns, s.position_ns + played)
        if s.position_ns >= s.duration_ns:
            s.state = STOPPED
            return self._encode(s, now, "stop", ',"reason":"completed"')
        step_up = self._step_up_rate(s)
        abandon = b.abandon_rate + (
            b.early_abandon_rate if s.played_ns < b.early_window_s * NS else 0.0
        )
        rebuffer = self._rebuffer_rate(s)
        pick = self._random() * (
            b.pause_rate + b.seek_rate + rebuffer + step_up + abandon + b.error_rate
        )
        if pick < step_up:
            previous = s.bitrate
            s.rung += 1
            s.bitrate = LADDER[s.rung]
            return self._encode(s, now, "play", f',"prev_bitrate_kbps":{previous}')
        pick -= step_up
        if pick < rebuffer:
            s.state = BUFFERING
            s.buffer_start_ns = now
            s.buffer_reason = "rebuffer"
            return self._encode(s, now, "buffer_start", ',"buffer_reason":"rebuffer"')
        pick -= rebuffer
        if pick < b.pause_rate:
            s.state = PAUSED
            return self._encode(s, now, "pause", "")
        pick -= b.pause_rate
        if pick < b.seek_rate:
            s.state = SEEKING
            s.position_ns = self._seek_target(s)
            return self._encode(s, now, "seek", "")
        pick -= b.seek_rate
        s.state = STOPPED
        reason = "abandoned" if pick < abandon else "error"
        return self._encode(s, now, "stop", f',"reason":"{reason}"')

    def _paused(self, s: Session, now: int) -> tuple[bytes, EventType]:
        if self._random() < self.behaviour.resume_share_after_pause:
            s.state = PLAYING
            return self._encode(s, now, "play", "")
        s.state = STOPPED
        return self._encode(s, now, "stop", ',"reason":"abandoned"')

    def _buffering(self, s: Session, now: int) -> tuple[bytes, EventType]:
        waited_ms = (now - s.buffer_start_ns) // MS
        rebuffer = s.buffer_reason == "rebuffer"
        if rebuffer and self._random() < self.behaviour.abandon_in_rebuffer:
            s.state = STOPPED
            return self._encode(s, now, "stop", f',"buffer_ms":{waited_ms},"reason":"abandoned"')
        s.state = PLAYING
        extra = f',"buffer_reason":"{s.buffer_reason}","buffer_ms":{waited_ms}'
        if rebuffer and s.rung > 0:
            # The player's adaptive bitrate logic reacts to the stall by stepping down.
            previous = s.bitrate
            s.rung -= 1
            s.bitrate = LADDER[s.rung]
            extra = f',"prev_bitrate_kbps":{previous}{extra}'
        return self._encode(s, now, "buffer_end", extra)

    def _update_pace(self, now: int) -> None:
        ticks, viewer_ns = self._pace_from
        event_ns = now - ticks * NS * 1000 // self._rate_milli
        if event_ns > 0:
            self.pace = (self.viewer_ns - viewer_ns) / event_ns
        self._pace_from = (self.ticks, self.viewer_ns)

    # -- planning

    def _plan(self, viewer: Viewer, s: Session, due: int) -> None:
        """Plan the viewer's next action on the viewer clock, `due` being this one's plan."""
        b = self.behaviour
        state = s.state
        if state == PLAYING:
            rate = (
                b.pause_rate
                + b.seek_rate
                + b.abandon_rate
                + b.error_rate
                + self._rebuffer_rate(s)
                + self._step_up_rate(s)
                + (b.early_abandon_rate if s.played_ns < b.early_window_s * NS else 0.0)
            )
            # Planned no later than the end of the title, where the session completes
            # (if it comes on time: see _playing).
            delay = min(int(self._exp(rate) * NS), s.duration_ns - s.position_ns)
        elif state == PAUSED:
            delay = int(self._lognormal(b.pause_median_s, b.pause_sigma) * NS)
        elif state == SEEKING:
            low, high = b.seek_to_buffer_s
            delay = int((low + (high - low) * self._random()) * NS)
        elif state == BUFFERING:
            stress = max(0.5, s.bitrate / s.capacity)
            median = (
                b.rebuffer_median_s if s.buffer_reason == "rebuffer" else b.seek_buffer_median_s
            )
            delay = int(self._lognormal(median * stress, b.buffer_sigma) * NS)
        else:  # STOPPED: the viewer idles, then starts another session
            viewer.session = None
            self.sessions_active -= 1
            delay = self._idle_ns()
        heappush(self._plans, (due + max(1, delay), self._order, viewer))
        self._order += 1

    def _new_session(self, viewer: Viewer) -> Session:
        b = self.behaviour
        title = bisect(self._title_cum, self._random() * self._title_cum[-1])
        title = min(title, len(self._title_cum) - 1)
        home = self._random() < b.home_device_share
        device = viewer.home if home else self._pick_device()
        capacity = self._lognormal(device.capacity_median_kbps, b.capacity_sigma)
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

    def _step_up_rate(self, s: Session) -> float:
        b = self.behaviour
        if s.rung >= s.device.top_rung:
            return 0.0
        if LADDER[s.rung + 1] > b.step_up_headroom * s.capacity:
            return 0.0
        return b.step_up_rate

    def _rebuffer_rate(self, s: Session) -> float:
        b = self.behaviour
        stress = s.bitrate / s.capacity
        return b.rebuffer_base_rate + b.rebuffer_stress_rate * math.pow(stress, b.rebuffer_exponent)

    def _seek_target(self, s: Session) -> int:
        """Mostly skips forward (intros, dull scenes), sometimes back, sometimes anywhere."""
        u = self._random()
        if u < 0.55:
            target = s.position_ns + int((10 + 110 * self._random()) * NS)
        elif u < 0.85:
            target = s.position_ns - int((5 + 55 * self._random()) * NS)
        else:
            target = int(self._random() * s.duration_ns)
        # Never onto the last seconds: a seek there would end the session in the same tick.
        return max(0, min(target, s.duration_ns - 5 * NS))

    # -- draws (only through random(), see the module docstring)

    def _exp(self, rate: float) -> float:
        return -math.log(1.0 - self._random()) / rate

    def _lognormal(self, median: float, sigma: float) -> float:
        # Box-Muller; the second normal of the pair is dropped to keep the draw order simple.
        radius = math.sqrt(-2.0 * math.log(1.0 - self._random()))
        normal = radius * math.cos(2.0 * math.pi * self._random())
        return median * math.exp(sigma * normal)

    def _idle_ns(self) -> int:
        b = self.behaviour
        return max(1, int(self._lognormal(b.idle_median_s, b.idle_sigma) * NS))

    def _pick_device(self) -> DeviceProfile:
        index = bisect(self._device_cum, self._random() * self._device_cum[-1])
        return self.behaviour.devices[min(index, len(self.behaviour.devices) - 1)]

    def _title_duration(self) -> int:
        if self._random() < self.behaviour.episode_share:
            return int(20 * 60 + 40 * 60 * self._random())
        return int(80 * 60 + 80 * 60 * self._random())

    # -- encoding

    def _encode(
        self, s: Session, now: int, event_type: EventType, extra: str
    ) -> tuple[bytes, EventType]:
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
        return value.encode("ascii"), event_type
