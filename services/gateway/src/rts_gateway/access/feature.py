"""Sign-in: who may watch (see auth.py for the tokens), checked for requests and sockets."""

from __future__ import annotations

import logging

from flask import request

from rts_gateway.access.auth import SESSION_COOKIE, Authenticator, AuthError, bearer
from rts_gateway.metrics import GatewayMetrics
from rts_gateway.settings import GatewaySettings

log = logging.getLogger(__name__)


class Access:
    def __init__(self, settings: GatewaySettings, metrics: GatewayMetrics) -> None:
        self._metrics = metrics
        secret = settings.auth_secret.get_secret_value()
        self.auth = (
            Authenticator(
                secret,
                login_ttl=settings.login_ttl_seconds,
                session_ttl=settings.session_ttl_seconds,
            )
            if secret
            else None
        )

    def start(self) -> None:
        if self.auth is None:
            log.warning("no GATEWAY_AUTH_SECRET: anyone who reaches this gateway may watch")

    def check_request(self) -> None:
        """Raise AuthError unless the current request carries a valid session (or sign-in
        is off). The failure is counted."""
        if self.auth is None:
            return
        try:
            self.auth.check_session(session_token())
        except AuthError as error:
            self.refused(error)
            raise

    def authorize_socket(self) -> None:
        """A Socket.IO connection's check: python-socketio refuses the connection on
        ConnectionRefusedError and tells the client why."""
        try:
            self.check_request()
        except AuthError as error:
            raise ConnectionRefusedError(str(error)) from None

    def refused(self, error: AuthError) -> None:
        self._metrics.auth_failures.labels(reason=error.reason).inc()


def session_token() -> str | None:
    return request.cookies.get(SESSION_COOKIE) or bearer(request.headers.get("Authorization"))
