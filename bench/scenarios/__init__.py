"""The scenarios, in the order a full run takes them: name -> (title, run)."""

from __future__ import annotations

from collections.abc import Callable

from bench.context import Bench, Section
from bench.scenarios import mjpeg

SCENARIOS: dict[str, tuple[str, Callable[[Bench], Section]]] = {
    "mjpeg": (mjpeg.TITLE, mjpeg.run),
}
