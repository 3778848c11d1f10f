"""Who may watch: signed, expiring tokens, traded once for an HttpOnly session cookie.

Shared by the gateway, which checks them, and by what signs in with the gateway's secret
itself (the latency probe, the chart's helm test), so the two can never disagree on the
format.

An operator (or `make run`) creates a login link with `gateway login-url`: a token signed
with the gateway's secret that expires within minutes, optionally limited to some cameras
and to viewing (the default) or operating. The token travels in the link's fragment
(`/login#token=...`), which browsers never send to a server, so no proxy or access log
sees it: the page at `/login` reads it and POSTs it back. The trade sets an HttpOnly,
SameSite session cookie (itself signed, expiring, and carrying the link's scope) and
the dashboard opens. Scripts may POST the token themselves and send the session token as
`Authorization: Bearer ...`.

Every replica shares the secret, so a session made by one is valid on all. What a
signature cannot say, that a link was already used or a session revoked, every gateway
replica learns from the `gateway-sessions` topic (the gateway's access/ledger.py).
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

SESSION_COOKIE = "rts_session"

Role = Literal["viewer", "operator"]
ROLES: tuple[Role, ...] = ("viewer", "operator")


@dataclass(frozen=True)
class Grant:
    subject: str
    session: str  # the session's id: what a revocation names
    role: Role
    cameras: frozenset[str] | None  # None: every camera
    issued_at: float  # epoch seconds
    expires_at: float

    def sees(self, camera: str) -> bool:
        return self.cameras is None or camera in self.cameras

    @property
    def operates(self) -> bool:
        """Operators may also replay recorded video and revoke sessions."""
        return self.role == "operator"


class AuthError(Exception):
    """A missing, forged, expired, reused or revoked credential; `reason` is a bounded
    metric label, `status` the HTTP answer (401, or 503 while sign-in cannot be checked)."""

    def __init__(self, reason: str, message: str, status: int = 401) -> None:
        super().__init__(message)
        self.reason = reason
        self.status = status


@dataclass(frozen=True)
class LoginLink:
    """A verified login token: what the session it opens may do, and its one-time nonce."""

    nonce: str
    subject: str
    role: Role
    cameras: frozenset[str] | None
    expires_at: float


@dataclass(frozen=True)
class Session:
    token: str
    grant: Grant


class Authenticator:
    def __init__(self, secret: str, *, login_ttl: int, session_ttl: int) -> None:
        if len(secret) < 16:
            raise ValueError("the auth secret must be at least 16 characters")
        self._login = URLSafeTimedSerializer(secret, salt="rts-login")
        self._session = URLSafeTimedSerializer(secret, salt="rts-session")
        self.login_ttl = login_ttl
        self.session_ttl = session_ttl

    def login_token(
        self,
        subject: str = "viewer",
        *,
        cameras: Iterable[str] | None = None,
        role: Role = "viewer",
    ) -> str:
        """A login link's token; `cameras` limits what its session may see (None: all)."""
        if role not in ROLES:
            raise ValueError(f"role must be one of {', '.join(ROLES)}")
        scope = sorted(set(cameras)) if cameras is not None else None
        return self._login.dumps(
            {"sub": subject, "nonce": secrets.token_urlsafe(12), "role": role, "cams": scope}
        )

    def open_link(self, token: str) -> LoginLink:
        """Verify a login token's signature and age (whether it was used is the ledger's)."""
        payload, issued = self._loads(self._login, token, self.login_ttl, "login link")
        nonce = payload.get("nonce")
        if not isinstance(nonce, str) or not nonce:
            raise AuthError("invalid", "the login link is not valid")
        role, cameras = _scope(payload)
        return LoginLink(
            nonce, str(payload.get("sub", "viewer")), role, cameras, issued + self.login_ttl
        )

    def issue(
        self, subject: str, *, cameras: Iterable[str] | None = None, role: Role = "viewer"
    ) -> Session:
        """A session for a process that holds the secret itself (the latency probe, the
        helm test): no link to trade, so nothing to record as used."""
        scope = frozenset(cameras) if cameras is not None else None
        return self.session(LoginLink("", subject, role, scope, time.time()))

    def session(self, link: LoginLink) -> Session:
        """A new session with the link's scope and a fresh id."""
        session_id = secrets.token_urlsafe(12)
        cams = sorted(link.cameras) if link.cameras is not None else None
        token = self._session.dumps(
            {"sub": link.subject, "sid": session_id, "role": link.role, "cams": cams}
        )
        now = time.time()
        grant = Grant(
            link.subject, session_id, link.role, link.cameras, now, now + self.session_ttl
        )
        return Session(token, grant)

    def check_session(self, token: str | None) -> Grant:
        """The session's grant (signature and age checked), or AuthError."""
        if not token:
            raise AuthError("missing", "sign in first: open a login link (gateway login-url)")
        payload, issued = self._loads(self._session, token, self.session_ttl, "session")
        session_id = payload.get("sid")
        if not isinstance(session_id, str) or not session_id:
            raise AuthError("invalid", "the session is not valid")
        role, cameras = _scope(payload)
        return Grant(
            str(payload.get("sub", "viewer")),
            session_id,
            role,
            cameras,
            issued,
            issued + self.session_ttl,
        )

    @staticmethod
    def _loads(
        serializer: URLSafeTimedSerializer, token: str, max_age: int, what: str
    ) -> tuple[dict[str, Any], float]:
        try:
            payload, issued = serializer.loads(token, max_age=max_age, return_timestamp=True)
        except SignatureExpired:
            raise AuthError("expired", f"the {what} has expired; ask for a new one") from None
        except BadSignature:
            raise AuthError("invalid", f"the {what} is not valid") from None
        if not isinstance(payload, dict):
            raise AuthError("invalid", f"the {what} is not valid")
        return payload, issued.timestamp()


def _scope(payload: dict[str, Any]) -> tuple[Role, frozenset[str] | None]:
    role = payload.get("role", "viewer")
    cams = payload.get("cams")
    if role not in ROLES or not (cams is None or isinstance(cams, list)):
        raise AuthError("invalid", "the credential's scope is not valid")
    return role, frozenset(str(c) for c in cams) if cams is not None else None


def bearer(header: str | None) -> str | None:
    if header and header.lower().startswith("bearer "):
        return header[7:].strip() or None
    return None
