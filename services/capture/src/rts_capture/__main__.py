"""`capture`: one camera, file, stream or test pattern into Kafka (see `capture --help`)."""

from __future__ import annotations

import sys

from rts_common.logs import configure_logging

from rts_capture.service import run
from rts_capture.settings import CaptureSettings
from rts_capture.sources.opencv import quiet_opencv


def main(argv: list[str] | None = None) -> int:
    settings = CaptureSettings.load(argv)
    configure_logging("capture", settings.log_level, settings.log_format)
    quiet_opencv(verbose=settings.log_level == "debug")
    return run(settings)


if __name__ == "__main__":
    sys.exit(main())
