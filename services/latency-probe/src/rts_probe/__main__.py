"""`latency-probe`: parse settings, build the probe and the ops server, run until stopped."""

from __future__ import annotations

import logging
import sys

from rts_common.lifecycle import shutdown_event
from rts_common.logs import configure_logging
from rts_common.ops import OpsServer

from rts_probe.metrics import ProbeMetrics
from rts_probe.probe import Probe
from rts_probe.settings import ProbeSettings

log = logging.getLogger("rts_probe")


def main(argv: list[str] | None = None) -> int:
    settings = ProbeSettings.load(argv)
    configure_logging("latency-probe", settings.log_level, settings.log_format)
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


if __name__ == "__main__":
    sys.exit(main())
