"""Sign-in: who may watch (rts_common.signin for the tokens), checked for requests and sockets;
sessions that end everywhere (ledger.py); the audit log of sign-ins and sign-outs.

The audit log is the `rts_gateway.audit` logger: one line per sign-in (subject, session
id, scope, client address), refused sign-in, sign-out and revocation; never a token.
"""

from __future__ import annotations

import collections
import ipaddress
import logging
import time
from collections.abc import Mapping
from typing import Any

from flask import request
from rts_common.contracts import SessionRecord
from rts_common.ops import Component
from rts_common.pacing import TokenBucket
from rts_common.signin import SESSION_COOKIE, Authenticator, AuthError, Grant, Session, bearer
from rts_common.tasks import PeriodicTask
from werkzeug.wrappers import Request

from rts_gateway.access.ledger import LedgerUnavailable, SessionLedger
from rts_gateway.bridge import KafkaBridge
from rts_gateway.grants import Leases, LimitReached
from rts_gateway.metrics import GatewayMetrics
from rts_gateway.settings import GatewaySettings

log = logging.getLogger(__name__)
audit = logging.getLogger("rts_gateway.audit")

# Client addresses remembered for the login rate limit; the oldest are forgotten first.
MAX_TRACKED_CLIENTS = 10_000


class Access:
    def __init__(
        self, settings: GatewaySettings, bridge: KafkaBridge, metrics: GatewayMetrics
    ) -> None:
        self._settings = settings
        self._metrics = metrics
        self.leases = Leases(metrics)
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
        self.ledger = SessionLedger(bridge, self._revoked) if self.auth else None
        self.proxies = TrustedProxies(settings.trusted_proxies)
        self._login_rate = ClientRate(
            settings.login_attempts_per_minute / 60.0, max(1.0, settings.login_attempts_per_minute)
        )
        # Closing streams and sockets touches the hub and the socket server: on the
        # dispatcher, like the rest of their housekeeping.
        self._tasks = [
            PeriodicTask("session-expiry", 1.0, bridge.runtime.serialized(self.leases.expire))
        ]

    # -- lifecycle

    def start(self) -> None:
        if self.ledger is None:
            log.warning("no GATEWAY_AUTH_SECRET: anyone who reaches this gateway may watch")
            return
        self.ledger.start()
        for task in self._tasks:
            task.start()

    def components(self) -> list[Component]:
        """What must keep running while sign-in is on: the ledger's reader, the expiry."""
        if self.ledger is None:
            return []
        return [*self.ledger.components(), *self._tasks]

    def request_stop(self) -> None:
        for task in self._tasks:
            task.stop(timeout=0)
        if self.ledger is not None:
            self.ledger.request_stop()

    def wait_stopped(self, deadline: float) -> None:
        if self.ledger is not None:
            self.ledger.wait_stopped(deadline)

    # -- checking credentials

    def grant_for(self, token: str | None) -> Grant | None:
        """The grant of a session token (None when sign-in is off), or AuthError, counted."""
        if self.auth is None or self.ledger is None:
            return None
        try:
            grant = self.auth.check_session(token)
            if not self.ledger.caught_up:
                raise AuthError(
                    "unavailable", "sign-in is starting; try again in a moment", status=503
                )
            if self.ledger.revoked(grant):
                raise AuthError("revoked", "this session was ended; ask for a new login link")
        except AuthError as error:
            self.refused(error)
            raise
        return grant

    def check_request(self) -> Grant | None:
        """The current request's grant, or AuthError."""
        return self.grant_for(
            session_token(request.cookies.get(SESSION_COOKIE), request.headers.get("Authorization"))
        )

    def check_environ(self, environ: Mapping[str, Any]) -> Grant | None:
        """The same check outside Flask (a WSGI middleware's request)."""
        incoming = Request(dict(environ))
        return self.grant_for(
            session_token(
                incoming.cookies.get(SESSION_COOKIE), incoming.headers.get("Authorization")
            )
        )

    def authorize_socket(self) -> Grant | None:
        """A Socket.IO connection's check: python-socketio refuses the connection on
        ConnectionRefusedError and tells the client why."""
        try:
            return self.check_request()
        except AuthError as error:
            raise ConnectionRefusedError(str(error)) from None

    def refused(self, error: AuthError) -> None:
        self._metrics.auth_failures.labels(reason=error.reason).inc()

    # -- signing in and out

    def sign_in(self, token: str, client: str) -> Session:
        """Trade a login token for a session, once across every replica; AuthError or
        LimitReached otherwise. Audited."""
        if not self._login_rate.allow(client):
            self._metrics.limit_hits.labels(limit="login_attempts").inc()
            audit.warning("sign-in refused", extra={"reason": "rate", "client": client})
            raise LimitReached("login_attempts", "too many sign-in attempts; wait a minute", 60)
        assert self.auth is not None
        assert self.ledger is not None
        try:
            link = self.auth.open_link(token)
            if not self.ledger.caught_up:
                raise AuthError(
                    "unavailable", "sign-in is starting; try again in a moment", status=503
                )
            try:
                first = self.ledger.claim_link(link.nonce, link.expires_at)
            except LedgerUnavailable as exc:
                log.error("cannot record a sign-in", extra={"error": str(exc)})
                raise AuthError(
                    "unavailable", "sign-in is unavailable; try again in a moment", status=503
                ) from None
            if not first:
                raise AuthError("reused", "this login link was already used; ask for a new one")
        except AuthError as error:
            self.refused(error)
            audit.warning("sign-in refused", extra={"reason": error.reason, "client": client})
            raise
        session = self.auth.session(link)
        self._metrics.sign_ins.inc()
        grant = session.grant
        audit.info(
            "signed in",
            extra={
                "subject": grant.subject,
                "session": grant.session,
                "role": grant.role,
                "cameras": sorted(grant.cameras) if grant.cameras is not None else "all",
                "client": client,
            },
        )
        return session

    def sign_out(self, grant: Grant, client: str) -> None:
        """End `grant`'s session on every replica (LedgerUnavailable if Kafka is away)."""
        assert self.ledger is not None
        self.ledger.revoke_session(grant)
        audit.info(
            "signed out",
            extra={"subject": grant.subject, "session": grant.session, "client": client},
        )

    def revoke(self, by: Grant, *, session: str | None = None, subject: str | None = None) -> None:
        """An operator ends another session, or every session of a subject."""
        assert self.ledger is not None
        if session:
            self.ledger.record(
                SessionRecord(
                    kind="session_revoked",
                    id=session,
                    ts=time.time_ns(),
                    until=time.time_ns() + self._settings.session_ttl_seconds * 10**9,
                )
            )
        if subject:
            self.ledger.revoke_subject(subject, self._settings.session_ttl_seconds)
        audit.info(
            "revoked", extra={"by": by.subject, "session": session or "", "subject": subject or ""}
        )

    def _revoked(self, fact: SessionRecord) -> None:
        """A revocation read from Kafka (any replica's): end what it names here."""
        if fact.kind == "session_revoked":
            self.leases.end_session(fact.id, "revoked")
        elif fact.kind == "subject_revoked":
            self.leases.end_subject(fact.id, fact.ts / 1e9)


def session_token(cookie: str | None, authorization: str | None) -> str | None:
    """The session token of a request: its cookie, or a script's bearer token."""
    return cookie or bearer(authorization)


class TrustedProxies:
    """Which peers may tell the client's address (X-Forwarded-For): the configured
    networks, nobody else. (gunicorn applies the same list to X-Forwarded-Proto.)"""

    def __init__(self, setting: str) -> None:
        self.networks = [
            ipaddress.ip_network(item.strip(), strict=False)
            for item in setting.split(",")
            if item.strip()
        ]

    def trusts(self, address: str) -> bool:
        try:
            peer = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(peer in network for network in self.networks)

    def client(self, environ: Mapping[str, Any]) -> str:
        """The client's address: the peer, or what a trusted proxy says the peer was."""
        peer = str(environ.get("REMOTE_ADDR") or "")
        forwarded = str(environ.get("HTTP_X_FORWARDED_FOR") or "")
        if forwarded and self.trusts(peer):
            # The proxy appends the address it saw: the last entry is the one it vouches for.
            return forwarded.rsplit(",", 1)[-1].strip() or peer
        return peer


class ClientRate:
    """A token bucket per client address, for the few addresses seen lately."""

    def __init__(self, rate: float, burst: float) -> None:
        self._rate, self._burst = rate, burst
        self._buckets: collections.OrderedDict[str, TokenBucket] = collections.OrderedDict()

    def allow(self, client: str) -> bool:
        bucket = self._buckets.pop(client, None)
        if bucket is None:
            bucket = TokenBucket(self._rate, self._burst, initial=self._burst)
        self._buckets[client] = bucket
        while len(self._buckets) > MAX_TRACKED_CLIENTS:
            self._buckets.popitem(last=False)
        return bucket.take(1) == 1
