"""`notifier`: detections that matter, pushed to webhooks and MQTT (see `notifier --help`)."""

from __future__ import annotations

import sys

from rts_common.logs import configure_logging

from rts_notifier.service import run
from rts_notifier.settings import NotifierSettings


def main(argv: list[str] | None = None) -> int:
    settings = NotifierSettings.load(argv)
    configure_logging("notifier", settings.log_level, settings.log_format)
    return run(settings)


if __name__ == "__main__":
    sys.exit(main())
