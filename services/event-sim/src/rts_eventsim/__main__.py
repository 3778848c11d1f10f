"""`event-sim`: simulated video-playback telemetry into Kafka (see `event-sim --help`)."""

from __future__ import annotations

import sys

from rts_common.logs import configure_logging

from rts_eventsim.service import run
from rts_eventsim.settings import EventSimSettings


def main(argv: list[str] | None = None) -> int:
    settings = EventSimSettings.load(argv)
    configure_logging("event-sim", settings.log_level, settings.log_format)
    return run(settings)


if __name__ == "__main__":
    sys.exit(main())
