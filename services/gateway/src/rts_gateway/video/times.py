"""Time parameters of the video routes (`from`, `to`, `at`), parsed within bounds.

A time is `now`, a negative offset from now (`-30s`, `-1500ms`, `-2m`, `-1h`) or an
ISO-8601 moment (`2026-11-22T10:00:00Z`, `...+01:00`; without a zone: UTC). Anything
else, and any moment more than MAX_PAST_SECONDS back or MAX_FUTURE_SECONDS ahead, is a
BadTime (a 400), decided from the text alone: a route parses every time before it opens
a Kafka read, and no input, however many digits it has, overflows a conversion.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from datetime import UTC, datetime

MAX_PAST_SECONDS = 31 * 86_400
# Browsers' clocks run a little ahead of the gateway's; beyond this it is a mistake.
MAX_FUTURE_SECONDS = 3_600
# Longer text is never a time; it would only be echoed back into the error message.
_MAX_LENGTH = 40
_RELATIVE = re.compile(r"^-(\d{1,12}(?:\.\d{1,6})?)(ms|s|m|h)$")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
# A `+01:00` written into a URL unescaped arrives as ` 01:00`.
_UNESCAPED_PLUS = re.compile(r"(?<=\d) (?=\d\d:?\d\d$)")
FORMS = (
    "use now, a negative offset like -30s, -2m, -1500ms, -1h, "
    "or an ISO-8601 time like 2026-11-22T10:00:00Z"
)


class BadTime(ValueError):
    """A time parameter that cannot be used; the message says which and why."""


@dataclass(frozen=True)
class TimeRange:
    """[start_ms, end_ms) in epoch milliseconds."""

    start_ms: int
    end_ms: int

    @property
    def seconds(self) -> float:
        return (self.end_ms - self.start_ms) / 1000


def _shown(value: str) -> str:
    return repr(value if len(value) <= _MAX_LENGTH else value[:_MAX_LENGTH] + "...")


def parse_time(name: str, value: str, now: float | None = None) -> int:
    """The time `value` of parameter `name`, in epoch milliseconds, or BadTime."""
    now = time.time() if now is None else now
    text = value.strip()
    if not text or len(text) > _MAX_LENGTH:
        raise BadTime(f"{name}={_shown(value)}: {FORMS}")
    if text == "now":
        return int(now * 1000)
    match = _RELATIVE.match(text)
    if match:
        back = float(match.group(1)) * _UNITS[match.group(2)]
        if back > MAX_PAST_SECONDS:
            raise BadTime(f"{name}={_shown(value)}: at most {MAX_PAST_SECONDS // 86_400} days back")
        return int((now - back) * 1000)
    try:
        moment = datetime.fromisoformat(_UNESCAPED_PLUS.sub("+", text).replace("Z", "+00:00"))
    except ValueError:
        raise BadTime(f"{name}={_shown(value)}: {FORMS}") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    try:
        seconds = moment.timestamp()
    except (OverflowError, OSError, ValueError):  # years the platform's clock cannot hold
        seconds = float("-inf")
    if not now - MAX_PAST_SECONDS <= seconds <= now + MAX_FUTURE_SECONDS:
        raise BadTime(
            f"{name}={_shown(value)}: must lie within the last {MAX_PAST_SECONDS // 86_400} "
            "days (and not later than an hour from now)"
        )
    return int(seconds * 1000)


def parse_range(
    start: str | None,
    end: str | None,
    *,
    max_seconds: float,
    default_start_seconds: float | None = None,
    now: float | None = None,
) -> TimeRange:
    """`from` and `to` as a range of at most `max_seconds`; `to` defaults to now, `from` to
    `default_start_seconds` before `to` (required when None)."""
    now = time.time() if now is None else now
    end_ms = parse_time("to", end, now) if end else int(now * 1000)
    if start:
        start_ms = parse_time("from", start, now)
    elif default_start_seconds is not None:
        start_ms = end_ms - int(default_start_seconds * 1000)
    else:
        raise BadTime(f"from is required: {FORMS}")
    if end_ms <= start_ms:
        raise BadTime("to must be later than from")
    if (end_ms - start_ms) / 1000 > max_seconds:
        raise BadTime(f"from..to may span at most {max_seconds:g} seconds")
    return TimeRange(start_ms, end_ms)


def iso_ms(epoch_ms: int | None) -> str | None:
    """An epoch-milliseconds time as ISO-8601 UTC; None for None or a time out of range."""
    if epoch_ms is None:
        return None
    try:
        return datetime.fromtimestamp(epoch_ms / 1000, UTC).isoformat(timespec="milliseconds")
    except (OverflowError, OSError, ValueError):
        return None
