"""Clean shutdown: SIGTERM (Kubernetes, the local supervisor) and SIGINT (Ctrl-C) set one event.

The service's main loop watches the event, then flushes its producer or commits its
offsets before exiting; a second signal exits at once for an operator who means it.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import signal
import threading
from types import FrameType

log = logging.getLogger(__name__)


def shutdown_event() -> threading.Event:
    """An event set by the first SIGTERM/SIGINT; the second one exits immediately."""
    stop = threading.Event()

    def handle(signum: int, _frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        if stop.is_set():
            log.warning("second signal, exiting now", extra={"signal": name})
            os._exit(128 + signum)
        log.info("shutting down", extra={"signal": name})
        stop.set()

    signal.signal(signal.SIGTERM, handle)
    signal.signal(signal.SIGINT, handle)
    return stop


def die_with_parent() -> None:
    """Ask Linux to SIGTERM this process when its parent dies (elsewhere: nothing).

    Called in a child just after fork: a supervisor, test session or gunicorn master that
    is killed outright would otherwise leave its children running, holding ports.
    """
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, signal.SIGTERM)
