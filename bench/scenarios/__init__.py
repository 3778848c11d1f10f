"""The scenarios, in the order a full run takes them: name -> (title, run)."""

from __future__ import annotations

from collections.abc import Callable

from bench.context import Bench, Section
from bench.scenarios import cameras, capture, eventsim, ingest, latency, mjpeg, socketio, storage

SCENARIOS: dict[str, tuple[str, Callable[[Bench], Section]]] = {
    "capture": (capture.TITLE, capture.run),
    "cameras": (cameras.TITLE, cameras.run),
    "eventsim": (eventsim.TITLE, eventsim.run),
    "ingest": (ingest.TITLE, ingest.run),
    "latency": (latency.TITLE, latency.run),
    "mjpeg": (mjpeg.TITLE, mjpeg.run),
    "socketio": (socketio.TITLE, socketio.run),
    "storage": (storage.TITLE, storage.run),
}
