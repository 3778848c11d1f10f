"""`gateway login-url`: print a one-time sign-in link (needs GATEWAY_AUTH_SECRET)."""

from __future__ import annotations

import argparse

from rts_gateway.access.auth import Authenticator
from rts_gateway.settings import GatewaySettings


def login_url(argv: list[str]) -> int:
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
    print(f"{base}/login?token={auth.login_token(args.subject)}")  # noqa: T201 - its output
    return 0
