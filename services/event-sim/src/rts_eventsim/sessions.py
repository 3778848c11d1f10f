"""A playback session as a state machine: the event its player reports next, the state it
moves to, and how long it stays there (on the viewer clock, see simulation.py).

A session starts (plays, or fails to start), then plays: it steps up the bitrate ladder
while the network allows, rebuffers (more often the closer its bitrate is to the
network's capacity), pauses, seeks, or stops (completed, abandoned, an error). Paused,
it resumes or its viewer leaves; a seek is followed by buffering; buffering ends in
playing again (one rung lower after a rebuffer) or the viewer leaving. How often and how
long come from `Behaviour`; every draw goes through `Draws`.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

from rts_common.events import Device, EventType

NS = 1_000_000_000
MS = 1_000_000

# Rendition ladder (kbps), shared by every title; devices cap how high they climb.
LADDER = (600, 1200, 2400, 4800, 8000)

# Internal player states (ints: they are compared on every event).
STARTING, PLAYING, PAUSED, SEEKING, BUFFERING, STOPPED = range(6)

# What a step reports: the event's type and its extra JSON fields (",..." or "").
Step = tuple[EventType, str]


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


class Draws:
    """The simulation's one source of randomness, drawn only through `random()` (whose
    stream CPython keeps stable across versions)."""

    __slots__ = ("random",)

    def __init__(self, seed: int) -> None:
        self.random = random.Random(seed).random  # noqa: S311 - a simulation, not secrets

    def exp(self, rate: float) -> float:
        return -math.log(1.0 - self.random()) / rate

    def lognormal(self, median: float, sigma: float) -> float:
        # Box-Muller; the second normal of the pair is dropped to keep the draw order simple.
        radius = math.sqrt(-2.0 * math.log(1.0 - self.random()))
        normal = radius * math.cos(2.0 * math.pi * self.random())
        return median * math.exp(sigma * normal)


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


class SessionMachine:
    """Moves sessions from state to state: `step` when a session's planned action is due,
    then `delay_ns` until its next one."""

    def __init__(self, behaviour: Behaviour, draws: Draws) -> None:
        self.behaviour = behaviour
        self._draws = draws
        self._random = draws.random

    def step(self, s: Session, now: int) -> Step:
        """The session's action at `now` (ns on the event clock): the event it reports,
        with its state, position and bitrate moved on."""
        state = s.state
        if state == PLAYING:
            return self._playing(s, now)
        if state == PAUSED:
            return self._paused(s)
        if state == SEEKING:
            s.state = BUFFERING
            s.buffer_start_ns = now
            s.buffer_reason = "seek"
            return "buffer_start", ',"buffer_reason":"seek"'
        if state == STARTING:
            return self._start(s)
        return self._buffering(s, now)  # BUFFERING: the only other state a step meets

    def delay_ns(self, s: Session) -> int:
        """How long the session stays in its state before its next action (for a stopped
        one: how long its viewer idles before starting another)."""
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
            return min(int(self._draws.exp(rate) * NS), s.duration_ns - s.position_ns)
        if state == PAUSED:
            return int(self._draws.lognormal(b.pause_median_s, b.pause_sigma) * NS)
        if state == SEEKING:
            low, high = b.seek_to_buffer_s
            return int((low + (high - low) * self._random()) * NS)
        if state == BUFFERING:
            stress = max(0.5, s.bitrate / s.capacity)
            median = (
                b.rebuffer_median_s if s.buffer_reason == "rebuffer" else b.seek_buffer_median_s
            )
            return int(self._draws.lognormal(median * stress, b.buffer_sigma) * NS)
        return max(1, int(self._draws.lognormal(b.idle_median_s, b.idle_sigma) * NS))

    def _start(self, s: Session) -> Step:
        b = self.behaviour
        failure = s.device.startup_failure + (b.slow_network_failure if s.capacity < 1000 else 0)
        if self._random() < failure:
            s.state = STOPPED
            return "stop", ',"reason":"startup_failure"'
        # Slow networks take longer to fill the first segment.
        median = s.device.startup_median_ms * (1 + 1000 / s.capacity)
        startup_ms = min(30_000, max(80, round(self._draws.lognormal(median, b.startup_sigma))))
        s.state = PLAYING
        return "play", f',"startup_ms":{startup_ms}'

    def _playing(self, s: Session, now: int) -> Step:
        b = self.behaviour
        played = now - s.last_ns
        s.played_ns += played
        s.position_ns = min(s.duration_ns, s.position_ns + played)
        if s.position_ns >= s.duration_ns:
            s.state = STOPPED
            return "stop", ',"reason":"completed"'
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
            return "play", f',"prev_bitrate_kbps":{previous}'
        pick -= step_up
        if pick < rebuffer:
            s.state = BUFFERING
            s.buffer_start_ns = now
            s.buffer_reason = "rebuffer"
            return "buffer_start", ',"buffer_reason":"rebuffer"'
        pick -= rebuffer
        if pick < b.pause_rate:
            s.state = PAUSED
            return "pause", ""
        pick -= b.pause_rate
        if pick < b.seek_rate:
            s.state = SEEKING
            s.position_ns = self._seek_target(s)
            return "seek", ""
        pick -= b.seek_rate
        s.state = STOPPED
        reason = "abandoned" if pick < abandon else "error"
        return "stop", f',"reason":"{reason}"'

    def _paused(self, s: Session) -> Step:
        if self._random() < self.behaviour.resume_share_after_pause:
            s.state = PLAYING
            return "play", ""
        s.state = STOPPED
        return "stop", ',"reason":"abandoned"'

    def _buffering(self, s: Session, now: int) -> Step:
        waited_ms = (now - s.buffer_start_ns) // MS
        rebuffer = s.buffer_reason == "rebuffer"
        if rebuffer and self._random() < self.behaviour.abandon_in_rebuffer:
            s.state = STOPPED
            return "stop", f',"buffer_ms":{waited_ms},"reason":"abandoned"'
        s.state = PLAYING
        extra = f',"buffer_reason":"{s.buffer_reason}","buffer_ms":{waited_ms}'
        if rebuffer and s.rung > 0:
            # The player's adaptive bitrate logic reacts to the stall by stepping down.
            previous = s.bitrate
            s.rung -= 1
            s.bitrate = LADDER[s.rung]
            extra = f',"prev_bitrate_kbps":{previous}{extra}'
        return "buffer_end", extra

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
