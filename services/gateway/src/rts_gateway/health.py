"""Liveness and readiness, composed from what each part reports, for the ops port.

Readiness needs the brokers to answer and the camera directory to be loaded, and turns
false as soon as a shutdown begins, so a load balancer stops sending new viewers first.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Check = Callable[[], tuple[bool, dict[str, Any]]]


class Health:
    def __init__(self, checks: list[Check]) -> None:
        self._checks = checks
        self.stopping = False

    def readiness(self) -> tuple[bool, dict[str, Any]]:
        ready = not self.stopping
        details: dict[str, Any] = {}
        for check in self._checks:
            ok, more = check()
            ready = ready and ok
            details.update(more)
        if self.stopping:
            details["stopping"] = True
        return ready, details

    def liveness(self) -> tuple[bool, dict[str, Any]]:
        """Whether the process should be restarted: the ops server answering is the check."""
        return True, {}
