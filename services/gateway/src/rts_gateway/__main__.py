"""gateway: MJPEG streams and the live dashboard, served by gunicorn (`gateway --help`);
`gateway login-url` prints a sign-in link."""

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


def login_url(argv: list[str]) -> int:
    """`gateway login-url`: print a one-time sign-in link (needs GATEWAY_AUTH_SECRET)."""
    import argparse

    from rts_gateway.auth import Authenticator
    from rts_gateway.settings import GatewaySettings

    parser = argparse.ArgumentParser(
        prog="gateway login-url",
        description="Print a one-time login link for the gateway (GATEWAY_AUTH_SECRET and "
        "GATEWAY_LOGIN_TTL_SECONDS come from the environment, as for the gateway itself).",
    )
    parser.add_argument("--base", default="", help="the gateway's URL as browsers reach it")
    parser.add_argument("--subject", default="viewer", help="who the session is for (logged)")
    args = parser.parse_args(argv)
    settings = GatewaySettings.load([])
    secret = settings.auth_secret.get_secret_value()
    if not secret:
        parser.error("GATEWAY_AUTH_SECRET is not set: the gateway does not require sign-in")
    auth = Authenticator(
        secret, login_ttl=settings.login_ttl_seconds, session_ttl=settings.session_ttl_seconds
    )
    base = (args.base or f"http://127.0.0.1:{settings.port}").rstrip("/")
    print(f"{base}/login?token={auth.login_token(args.subject)}")
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["login-url"]:
        return login_url(argv[1:])
    if wants_eventlet(argv, os.environ):
        # eventlet must patch the standard library before pydantic, Flask, Socket.IO or
        # gunicorn are imported, so that every lock and socket they create is green (and
        # its patcher chokes on some already-imported modules). It warns it is deprecated
        # on import: the README says why we still use it and how to leave it.
        warnings.filterwarnings("ignore", message="(?s).*eventlet")
        import eventlet

        eventlet.monkey_patch()
    from rts_common.logs import configure_logging

    from rts_gateway.server import serve
    from rts_gateway.settings import GatewaySettings

    settings = GatewaySettings.load(argv)
    configure_logging("gateway", settings.log_level, settings.log_format)
    serve(settings)
    return 0


if __name__ == "__main__":
    sys.exit(main())
