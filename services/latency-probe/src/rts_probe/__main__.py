"""`latency-probe`: one low-rate viewer per camera through the gateway (`--help`)."""

from __future__ import annotations

import sys

from rts_common.logs import configure_logging

from rts_probe.service import run
from rts_probe.settings import ProbeSettings


def main(argv: list[str] | None = None) -> int:
    settings = ProbeSettings.load(argv)
    configure_logging("latency-probe", settings.log_level, settings.log_format)
    return run(settings)


if __name__ == "__main__":
    sys.exit(main())
