"""Structured logs: one JSON object per line (for log collectors) or a compact console line.

Context goes in `extra={...}` and becomes keys of the JSON object, so a log line about
a camera can be found by `camera` without parsing the message.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any, Literal

from rts_common.settings import Settings, setting

LogFormat = Literal["json", "console"]

# Attributes every LogRecord has; anything else on a record came from `extra=`.
_RECORD_ATTRS = frozenset(
    vars(logging.LogRecord("", 0, "", 0, "", None, None)).keys()
    | {"message", "asctime", "taskName"}
)


class LoggingSettings(Settings):
    log_level: Literal["debug", "info", "warning", "error"] = setting(
        "info", "Lowest level that is logged", env="LOG_LEVEL"
    )
    log_format: LogFormat = setting(
        "json", "json: one JSON object per line; console: human-readable", env="LOG_FORMAT"
    )


def _context(record: logging.LogRecord) -> dict[str, Any]:
    return {k: v for k, v in vars(record).items() if k not in _RECORD_ATTRS}


class JsonFormatter(logging.Formatter):
    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, Any] = {
            "ts": _iso_millis(record.created),
            "level": record.levelname.lower(),
            "service": self.service,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        payload.update(_context(record))
        if record.exc_info:
            payload["exc"] = self.formatException(record.exc_info)
        return json.dumps(payload, default=str, ensure_ascii=False)


class ConsoleFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        stamp = time.strftime("%H:%M:%S", time.localtime(record.created))
        context = " ".join(f"{k}={v}" for k, v in _context(record).items())
        line = f"{stamp} {record.levelname:<7} {record.name}: {record.getMessage()}"
        if context:
            line = f"{line}  {context}"
        if record.exc_info:
            line = f"{line}\n{self.formatException(record.exc_info)}"
        return line


def configure_logging(service: str, level: str = "info", fmt: LogFormat = "json") -> None:
    """Route every logger of the process to stderr in the chosen format."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(service) if fmt == "json" else ConsoleFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # Werkzeug and engineio log every request at INFO; keep them to warnings.
    for noisy in ("werkzeug", "engineio.server", "socketio.server", "urllib3"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))


def _iso_millis(epoch: float) -> str:
    whole = time.gmtime(epoch)
    return time.strftime("%Y-%m-%dT%H:%M:%S", whole) + f".{int(epoch % 1 * 1000):03d}Z"


class Throttle:
    """Lets a repeated log line through once per `interval` per key.

    A dead broker or a stream of corrupt records would otherwise log the same line
    thousands of times a second; the metric counts every occurrence, the log shows one.
    """

    def __init__(self, interval: float = 60.0) -> None:
        self.interval = interval
        self._last: dict[object, float] = {}

    def allow(self, key: object) -> bool:
        now = time.monotonic()
        if now - self._last.get(key, float("-inf")) < self.interval:
            return False
        self._last[key] = now
        return True
