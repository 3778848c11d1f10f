"""The probe's composition root: the probe and its ops server, run until stopped."""

from __future__ import annotations

import logging

from rts_common.lifecycle import shutdown_event
from rts_common.ops import OpsServer

from rts_probe.metrics import ProbeMetrics
from rts_probe.probe import Probe
from rts_probe.settings import ProbeSettings

log = logging.getLogger("rts_probe")


def run(settings: ProbeSettings) -> int:
    """Watch every camera until SIGTERM/SIGINT; the process's exit code."""
    stop = shutdown_event()
    log.info("starting", extra=settings.describe())
    metrics = ProbeMetrics.create()
    probe = Probe(settings, metrics, stop)
    ops = OpsServer(metrics.registry, probe.readiness, settings.ops_host, settings.ops_port)
    ops.start()
    try:
        probe.run()
    finally:
        ops.stop()
    return 0
