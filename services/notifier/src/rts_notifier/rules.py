"""From detections to events: which detections matter (the rules), and when an event
starts, changes and ends.

Detections come every few frames while something is in view; people want one message
when it appears, one when it enters another zone, and one when it is gone. An event is
one camera seeing one kind of thing that a rule asks for: it starts with the first
matching detection, is updated when it enters a zone it was not in, and ends after
`gap` seconds of capture time without a matching detection (detectors skip frames, so a
single empty result does not end it). A camera going offline is an event that ends when
it is online again. Times are capture times, so the same records give the same events.

Messages follow Frigate's `frigate/events` layout (`type` new/update/end, `before`,
`after` with `id`, `camera`, `label`, `current_zones`, `entered_zones`...), which home
automation already knows, plus links to the moment's snapshot and replay.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import Any, Literal
from urllib.parse import quote

from rts_common.contracts import CAMERA_ID, ZONE_NAME, Detection
from rts_common.pacing import TokenBucket

EventType = Literal["new", "update", "end"]
LABELS = ("motion", "face", "person", "offline")


class RuleError(ValueError):
    """A rule that cannot be used; the message names it."""


@dataclass(frozen=True)
class Rule:
    camera: str  # a camera id or "*"
    zone: str  # a zone name or "*"
    kinds: frozenset[str]

    def matches(self, detection: Detection, label: str) -> bool:
        return (
            label in self.kinds
            and self.camera in ("*", detection.camera)
            and (self.zone == "*" or self.zone in detection.zones)
        )


def parse_rules(text: str) -> tuple[Rule, ...]:
    """`camera/zone=kind,kind[;...]`, or RuleError naming the bad rule."""
    rules = []
    for part in (p.strip() for p in text.split(";")):
        if not part:
            continue
        where, sep, kinds_text = part.partition("=")
        camera, slash, zone = where.strip().partition("/")
        if not sep or not slash:
            raise RuleError(f"rule {part!r}: write camera/zone=kind,kind ('*' for any)")
        if camera != "*" and not CAMERA_ID.fullmatch(camera):
            raise RuleError(f"rule {part!r}: {camera!r} is not a camera id")
        if zone != "*" and not ZONE_NAME.fullmatch(zone):
            raise RuleError(f"rule {part!r}: {zone!r} is not a zone name")
        kinds = frozenset(k.strip() for k in kinds_text.split(",") if k.strip())
        unknown = kinds - set(LABELS)
        if not kinds or unknown:
            raise RuleError(
                f"rule {part!r}: kinds are {', '.join(LABELS)} (got {sorted(unknown) or 'none'})"
            )
        rules.append(Rule(camera, zone, kinds))
    return tuple(rules)


@dataclass(frozen=True)
class Event:
    """A tracked event as the messages show it (Frigate's object fields, in seconds)."""

    id: str
    camera: str
    label: str
    start_time: float
    frame_time: float
    score: float
    top_score: float
    box: list[int]  # x1, y1, x2, y2 in frame pixels, as Frigate writes boxes
    frame_width: int | None
    frame_height: int | None
    current_zones: list[str] = field(default_factory=list)
    entered_zones: list[str] = field(default_factory=list)
    end_time: float | None = None
    snapshot_url: str = ""
    replay_url: str = ""

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "camera": self.camera,
            "label": self.label,
            "start_time": self.start_time,
            "end_time": self.end_time,
            "frame_time": self.frame_time,
            "score": self.score,
            "top_score": self.top_score,
            "box": self.box,
            "frame_width": self.frame_width,
            "frame_height": self.frame_height,
            "current_zones": self.current_zones,
            "entered_zones": self.entered_zones,
            "has_snapshot": bool(self.snapshot_url),
            "snapshot_url": self.snapshot_url,
            "replay_url": self.replay_url,
        }


@dataclass(frozen=True)
class Message:
    """One `frigate/events`-style message."""

    type: EventType
    before: Event
    after: Event

    def as_json(self) -> dict[str, Any]:
        return {"type": self.type, "before": self.before.as_json(), "after": self.after.as_json()}


def _iso(ts_ns: int) -> str:
    seconds, nanos = divmod(ts_ns, 1_000_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{nanos // 1_000_000:03d}Z"


def _box(boxes: list[tuple[int, int, int, int]]) -> list[int]:
    """The boxes' union, as x1, y1, x2, y2."""
    if not boxes:
        return []
    return [
        min(x for x, _, _, _ in boxes),
        min(y for _, y, _, _ in boxes),
        max(x + w for x, _, w, _ in boxes),
        max(y + h for _, y, _, h in boxes),
    ]


class Tracker:
    """Open events per camera and label; detections in, messages out (not thread-safe:
    the consumer loop owns it)."""

    def __init__(
        self,
        rules: Iterable[Rule],
        *,
        gap: float,
        gateway_url: str,
        max_per_minute: float,
        on_rate_limited: Any = None,
    ) -> None:
        self.rules = tuple(rules)
        self.gap_ns = int(gap * 1e9)
        self.gateway_url = gateway_url.rstrip("/")
        self.max_per_minute = max_per_minute
        self.open: dict[tuple[str, str], Event] = {}
        self._last_ns: dict[tuple[str, str], int] = {}
        self._buckets: dict[str, TokenBucket] = {}
        self._on_rate_limited = on_rate_limited

    def matching(self, detection: Detection, label: str) -> bool:
        return any(rule.matches(detection, label) for rule in self.rules)

    def on_detection(self, detection: Detection) -> list[Message]:
        if detection.kind == "online":
            return self._end((detection.camera, "offline"), detection.ts)
        label = detection.kind
        messages: list[Message] = []
        key = (detection.camera, label)
        last = self._last_ns.get(key)
        if last is not None and key in self.open and detection.ts - last > self.gap_ns:
            messages += self._end(key, last)
        seen = label == "offline" or bool(detection.boxes)
        if not seen or not self.matching(detection, label):
            return messages
        self._last_ns[key] = max(detection.ts, last or 0)
        event = self.open.get(key)
        if event is None:
            started = self._start(detection, label)
            if started is not None:
                messages.append(Message("new", started, started))
            return messages
        after = replace(
            event,
            frame_time=detection.ts / 1e9,
            score=detection.score,
            top_score=max(event.top_score, detection.score),
            box=_box(detection.boxes) or event.box,
            current_zones=list(detection.zones),
            entered_zones=event.entered_zones
            + [z for z in detection.zones if z not in event.entered_zones],
        )
        self.open[key] = after
        if after.entered_zones != event.entered_zones:
            messages.append(Message("update", event, after))
        return messages

    def sweep(self, now_ns: int) -> list[Message]:
        """End the events nothing was seen of for `gap` (by the wall clock: detections of
        that kind stopped coming at all)."""
        messages: list[Message] = []
        for key in list(self.open):
            if key[1] == "offline":
                continue  # ends when the camera is online again
            last = self._last_ns.get(key, 0)
            if now_ns - last > self.gap_ns:
                messages += self._end(key, last)
        return messages

    def _start(self, detection: Detection, label: str) -> Event | None:
        bucket = self._buckets.get(detection.camera)
        if bucket is None:
            capacity = max(1.0, self.max_per_minute)
            bucket = TokenBucket(self.max_per_minute / 60.0, capacity, initial=capacity)
            self._buckets[detection.camera] = bucket
        if label != "offline" and not bucket.take(1):
            if self._on_rate_limited is not None:
                self._on_rate_limited(detection.camera)
            return None
        at, camera = _iso(detection.ts), quote(detection.camera)
        event = Event(
            id=f"{detection.ts / 1e9:.6f}-{detection.camera}-{label}",
            camera=detection.camera,
            label=label,
            start_time=detection.ts / 1e9,
            frame_time=detection.ts / 1e9,
            score=detection.score,
            top_score=detection.score,
            box=_box(detection.boxes),
            frame_width=detection.width,
            frame_height=detection.height,
            current_zones=list(detection.zones),
            entered_zones=list(detection.zones),
            snapshot_url=f"{self.gateway_url}/snapshot/{camera}.jpg?at={at}",
            replay_url=f"{self.gateway_url}/stream/{camera}?from={at}",
        )
        self.open[(detection.camera, label)] = event
        return event

    def _end(self, key: tuple[str, str], last_ns: int) -> list[Message]:
        event = self.open.pop(key, None)
        self._last_ns.pop(key, None)
        if event is None:
            return []
        ended = replace(event, end_time=last_ns / 1e9, current_zones=[])
        return [Message("end", event, ended)]
