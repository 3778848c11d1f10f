"""gateway: MJPEG streams and the live dashboard, served by gunicorn (`gateway --help`);
`gateway login-url` prints a sign-in link, `gateway revoke` ends sessions."""

from __future__ import annotations

import os
import sys
import warnings
from collections.abc import Mapping, Sequence


def wants_eventlet(argv: Sequence[str], environ: Mapping[str, str]) -> bool:
    """The async mode, read before anything is imported (see main)."""
    mode = environ.get("GATEWAY_ASYNC_MODE", "eventlet")
    for i, arg in enumerate(argv):
        if arg == "--async-mode" and i + 1 < len(argv):
            mode = argv[i + 1]
        elif arg.startswith("--async-mode="):
            mode = arg.split("=", 1)[1]
    return mode == "eventlet"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["login-url"]:
        from rts_gateway.access.cli import login_url

        return login_url(argv[1:])
    if argv[:1] == ["revoke"]:
        from rts_gateway.access.cli import revoke

        return revoke(argv[1:])
    if wants_eventlet(argv, os.environ):
        # eventlet must patch the standard library before pydantic, Flask, Socket.IO or
        # gunicorn are imported, so that every lock and socket they create is green (and
        # its patcher chokes on some already-imported modules). It warns it is deprecated
        # on import: the README says why we still use it and how to leave it.
        warnings.filterwarnings("ignore", message="(?s).*eventlet")
        import eventlet

        eventlet.monkey_patch()
    from rts_common.logs import configure_logging

    from rts_gateway.service import run
    from rts_gateway.settings import GatewaySettings

    settings = GatewaySettings.load(argv)
    configure_logging("gateway", settings.log_level, settings.log_format)
    return run(settings)


if __name__ == "__main__":
    sys.exit(main())
