"""Who may watch: signed, expiring tokens, traded once for an HttpOnly session cookie.

An operator (or `make run`) creates a login link with `gateway login-url`: a token
signed with the gateway's secret that expires within minutes. Opening it sets an
HttpOnly, SameSite session cookie (itself signed and expiring) and redirects to the
dashboard, so no token ever travels in a stream URL, a Referer or a proxy log. MJPEG
streams, snapshots, the camera list and Socket.IO connections all need that session;
health, readiness and metrics stay open for probes and Prometheus (keep those off the
public ingress). Scripts may send the session token as `Authorization: Bearer ...`.

Every replica shares the secret, so a session made by one is valid on all. "One-time"
is enforced per replica (a replica remembers the login tokens it accepted until they
expire); the short lifetime bounds the rest.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from typing import Any

from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

SESSION_COOKIE = "rts_session"


class AuthError(Exception):
    """A missing, forged or expired credential; `reason` is a bounded metric label."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class Session:
    subject: str
    token: str
    max_age: int


class Authenticator:
    def __init__(self, secret: str, *, login_ttl: int, session_ttl: int) -> None:
        if len(secret) < 16:
            raise ValueError("the auth secret must be at least 16 characters")
        self._login = URLSafeTimedSerializer(secret, salt="rts-login")
        self._session = URLSafeTimedSerializer(secret, salt="rts-session")
        self.login_ttl = login_ttl
        self.session_ttl = session_ttl
        self._used: dict[str, float] = {}

    def login_token(self, subject: str = "viewer") -> str:
        return self._login.dumps({"sub": subject, "nonce": secrets.token_urlsafe(12)})

    def redeem(self, token: str) -> Session:
        """Check a login token (once) and return the session it opens."""
        payload = self._loads(self._login, token, self.login_ttl, "login link")
        nonce = str(payload.get("nonce", ""))
        now = time.monotonic()
        self._used = {n: t for n, t in self._used.items() if now - t < self.login_ttl}
        if nonce in self._used:
            raise AuthError("reused", "this login link was already used; ask for a new one")
        self._used[nonce] = now
        subject = str(payload.get("sub", "viewer"))
        return Session(subject, self._session.dumps({"sub": subject}), self.session_ttl)

    def check_session(self, token: str | None) -> str:
        """The session's subject, or AuthError."""
        if not token:
            raise AuthError("missing", "sign in first: open a login link (gateway login-url)")
        payload = self._loads(self._session, token, self.session_ttl, "session")
        return str(payload.get("sub", "viewer"))

    @staticmethod
    def _loads(
        serializer: URLSafeTimedSerializer, token: str, max_age: int, what: str
    ) -> dict[str, Any]:
        try:
            payload = serializer.loads(token, max_age=max_age)
        except SignatureExpired:
            raise AuthError("expired", f"the {what} has expired; ask for a new one") from None
        except BadSignature:
            raise AuthError("invalid", f"the {what} is not valid") from None
        if not isinstance(payload, dict):
            raise AuthError("invalid", f"the {what} is not valid")
        return payload


def bearer(header: str | None) -> str | None:
    if header and header.lower().startswith("bearer "):
        return header[7:].strip() or None
    return None
