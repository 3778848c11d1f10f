"""What a signed-in request may do, and the connections held under each session.

A `Grant` (rts_common.signin) is what a valid session carries (who, until when, which
cameras, viewing or operating); the access feature makes one per request or Socket.IO
connection, and the other features ask it before serving a camera. `Leases` counts what
each session holds open (streams, replays, sockets) for the per-session limits, and
closes all of it when the session is revoked or expires, on whichever replica it is.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from flask import g
from rts_common.signin import Grant

from rts_gateway.metrics import GatewayMetrics

log = logging.getLogger(__name__)


def bind(grant: Grant | None) -> None:
    """Remember the current request's grant (the access guard does, before any route)."""
    g.rts_grant = grant


def current_grant() -> Grant | None:
    """The current request's grant; None when sign-in is off."""
    grant: Grant | None = g.get("rts_grant")
    return grant


def sees(grant: Grant | None, camera: str) -> bool:
    return grant is None or grant.sees(camera)


class LimitReached(Exception):
    """A limit was hit; `limit` is the bounded metric label, `retry_after` in seconds."""

    def __init__(self, limit: str, message: str, retry_after: int = 5) -> None:
        super().__init__(message)
        self.limit = limit
        self.retry_after = retry_after


@dataclass(eq=False)
class Lease:
    """One thing a session holds open; `close` ends it (from the app context)."""

    grant: Grant
    kind: str
    close: Callable[[], None]
    _leases: Leases = field(repr=False)

    def release(self) -> None:
        self._leases.release(self)


class Leases:
    def __init__(self, metrics: GatewayMetrics) -> None:
        self._metrics = metrics
        self._by_session: dict[str, set[Lease]] = {}
        # Requests, the expiry task and the Kafka dispatcher all come here (threads in
        # threading mode); closing happens outside the lock, as it may come back here.
        self._lock = threading.Lock()

    def hold(
        self, grant: Grant | None, kind: str, close: Callable[[], None], limit: int | None = None
    ) -> Lease | None:
        """Register what `grant`'s session opens, within `limit` of that `kind` per session;
        raises LimitReached beyond it. None without a grant (sign-in off): nothing to end."""
        if grant is None:
            return None
        with self._lock:
            held = self._by_session.setdefault(grant.session, set())
            full = limit is not None and sum(1 for h in held if h.kind == kind) >= limit
            if not full:
                lease = Lease(grant, kind, close, self)
                held.add(lease)
                return lease
        self.hit(f"{kind}s_per_session")
        raise LimitReached(f"{kind}s_per_session", f"at most {limit} {kind}s at once per session")

    def release(self, lease: Lease) -> None:
        with self._lock:
            self._forget(lease)

    def _forget(self, lease: Lease) -> None:
        held = self._by_session.get(lease.grant.session)
        if held is not None:
            held.discard(lease)
            if not held:
                del self._by_session[lease.grant.session]

    def hit(self, limit: str) -> None:
        self._metrics.limit_hits.labels(limit=limit).inc()

    # -- ending sessions

    def end_session(self, session: str, reason: str) -> int:
        return self._close(lambda lease: lease.grant.session == session, reason)

    def end_subject(self, subject: str, before: float) -> int:
        """End every session of `subject` opened before `before` (epoch seconds)."""
        return self._close(
            lambda lease: lease.grant.subject == subject and lease.grant.issued_at < before,
            "revoked",
        )

    def expire(self, now: float | None = None) -> None:
        """Periodic: end whatever an expired session still holds."""
        now = time.time() if now is None else now
        self._close(lambda lease: lease.grant.expires_at <= now, "expired")

    def _close(self, doomed: Callable[[Lease], bool], reason: str) -> int:
        with self._lock:
            leases = [
                lease for held in self._by_session.values() for lease in held if doomed(lease)
            ]
            for lease in leases:
                self._forget(lease)
        closed = 0
        for lease in leases:
            try:
                lease.close()
            except Exception:
                log.exception("closing a session's %s failed", lease.kind)
            self._metrics.sessions_ended.labels(reason=reason, kind=lease.kind).inc()
            closed += 1
        if closed:
            log.info(
                "closed what an ended session held", extra={"reason": reason, "closed": closed}
            )
        return closed
