"""What every replica must know of sign-in that a signature cannot say: revoked sessions
and used login links, shared through the compacted `gateway-sessions` topic.

Delivery semantics: every replica reads the whole topic from the beginning by direct
assignment (no group, no commits), like the camera directory; until it has caught up
with what the topic held at start, it cannot tell a revoked session from a valid one,
so sign-in fails closed (503) meanwhile. Records are written with acks=all and
idempotence, and a writer waits until its own consumer has read its record back, so a
logout that returned is already in force on this replica (the others follow within
their poll interval).

A login link is used once across replicas and restarts: the replica that trades it
appends a `link_used` record with a claim id of its own, reads the partition up to that
record, and wins only if the first `link_used` record of that nonce is its own. Two
replicas trading the same link at once both see the same first record (one partition,
one order), so exactly one wins.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Callable
from typing import Any

from confluent_kafka import KafkaError, Message, Producer
from rts_common.contracts import GATEWAY_SESSIONS, SessionRecord
from rts_common.signin import Grant

from rts_gateway.bridge import Batch, ConsumerLoop, KafkaBridge, from_beginning

log = logging.getLogger(__name__)

RECORD_TIMEOUT = 5.0
PRUNE_EVERY_SECONDS = 60.0


class LedgerUnavailable(RuntimeError):
    """A record could not be written and read back in time (Kafka is unreachable)."""


class SessionLedger:
    def __init__(self, bridge: KafkaBridge, on_revoked: Callable[[SessionRecord], None]) -> None:
        self._bridge = bridge
        self._runtime = bridge.runtime
        self._topic = bridge.topic(GATEWAY_SESSIONS)
        self._on_revoked = on_revoked
        self._loop = bridge.direct_consumer(
            self._topic, self.on_batch, name="sessions", poll_timeout=0.1, expect_assignment=True
        )
        self._producer: Producer | None = None
        self._revoked_sessions: dict[str, int] = {}  # session id -> until (ns)
        self._revoked_subjects: dict[str, tuple[int, int]] = {}  # subject -> (before, until)
        self._links: dict[str, tuple[str, int]] = {}  # nonce -> (first claim, until)
        self._ends: dict[int, int] | None = None
        self._next: dict[int, int] = {}  # partition -> offset after the last record read
        self._pruned = time.monotonic()

    # -- lifecycle

    def start(self) -> None:
        self._loop.start()
        self._loop.assign_until_done(
            from_beginning(self._topic.name), self.assigned, what="the sign-in ledger"
        )

    def request_stop(self) -> None:
        self._loop.request_stop()

    def wait_stopped(self, deadline: float) -> None:
        self._loop.wait_stopped(max(0.1, deadline - time.monotonic()))
        if self._producer is not None:
            self._producer.flush(max(0.1, deadline - time.monotonic()))

    def components(self) -> list[ConsumerLoop[SessionRecord | None]]:
        return [self._loop]

    @property
    def caught_up(self) -> bool:
        """Everything the topic held when this replica started has been read."""
        if self._ends is None:
            return False
        return all(self._next.get(p, 0) >= end for p, end in self._ends.items())

    def assigned(self, ends: dict[int, int]) -> None:
        self._ends = ends

    # -- questions

    def revoked(self, grant: Grant) -> bool:
        if grant.session in self._revoked_sessions:
            return True
        subject = self._revoked_subjects.get(grant.subject)
        return subject is not None and grant.issued_at * 1e9 < subject[0]

    # -- facts to record (app context; each waits until the record is read back)

    def claim_link(self, nonce: str, until: float) -> bool:
        """Record that the link `nonce` is traded; True if this trade is its first."""
        claim = secrets.token_hex(8)
        self.record(
            SessionRecord(
                kind="link_used", id=nonce, ts=time.time_ns(), until=int(until * 1e9), claim=claim
            )
        )
        first = self._links.get(nonce)
        return first is not None and first[0] == claim

    def revoke_session(self, grant: Grant) -> None:
        self.record(
            SessionRecord(
                kind="session_revoked",
                id=grant.session,
                ts=time.time_ns(),
                until=int(grant.expires_at * 1e9),
            )
        )

    def revoke_subject(self, subject: str, session_ttl: float) -> None:
        """End every session of `subject` opened until now."""
        now = time.time_ns()
        self.record(
            SessionRecord(
                kind="subject_revoked", id=subject, ts=now, until=now + int(session_ttl * 1e9)
            )
        )

    def record(self, fact: SessionRecord, timeout: float = RECORD_TIMEOUT) -> None:
        """Append `fact` and wait until this replica has read it back."""
        producer = self._writer()
        deadline = time.monotonic() + timeout
        delivered: dict[str, Any] = {}

        def on_delivery(error: KafkaError | None, message: Message) -> None:
            delivered["error"], delivered["message"] = error, message

        try:
            producer.produce(
                self._topic.name,
                fact.model_dump_json().encode(),
                key=fact.key.encode(),
                on_delivery=on_delivery,
            )
        except (BufferError, ValueError) as exc:
            raise LedgerUnavailable(f"cannot record the sign-in fact: {exc}") from exc
        while not delivered:
            producer.poll(0)
            if time.monotonic() > deadline:
                raise LedgerUnavailable("Kafka did not take the sign-in fact in time")
            self._runtime.sleep(0.005)
        if delivered["error"] is not None:
            raise LedgerUnavailable(f"cannot record the sign-in fact: {delivered['error'].str()}")
        message: Message = delivered["message"]
        partition, offset = message.partition() or 0, message.offset() or 0
        while self._next.get(partition, 0) <= offset:
            if time.monotonic() > deadline:
                raise LedgerUnavailable("the sign-in fact was not read back in time")
            self._runtime.sleep(0.01)

    def _writer(self) -> Producer:
        if self._producer is None:
            # Made on first use: a gateway that never signs anyone in opens no producer.
            self._producer = self._bridge.producer(
                "sessions",
                **{
                    "acks": "all",
                    "enable.idempotence": True,
                    "linger.ms": 0,
                    "message.timeout.ms": int(RECORD_TIMEOUT * 1000),
                },
            )
        return self._producer

    # -- fed from Kafka

    def on_batch(self, batch: Batch[SessionRecord | None]) -> None:
        for partition, end in batch.ends.items():
            self._next[partition] = max(self._next.get(partition, 0), end)
        now = time.time_ns()
        for record in batch.records:
            fact = record.value
            if fact is None:  # a tombstone: compaction forgetting a fact
                self._forget((record.key or b"").decode("utf-8", "replace"))
                continue
            if fact.until < now:
                continue  # about a session or link that cannot be valid any more
            if fact.kind == "link_used":
                self._links.setdefault(fact.id, (fact.claim, fact.until))
            elif fact.kind == "session_revoked":
                self._revoked_sessions[fact.id] = fact.until
                self._on_revoked(fact)
            else:
                before, until = self._revoked_subjects.get(fact.id, (0, 0))
                self._revoked_subjects[fact.id] = (max(before, fact.ts), max(until, fact.until))
                self._on_revoked(fact)
        if time.monotonic() - self._pruned > PRUNE_EVERY_SECONDS:
            self._prune(now)

    def _forget(self, key: str) -> None:
        kind, _, ident = key.partition(":")
        if kind == "link_used":
            self._links.pop(ident, None)
        elif kind == "session_revoked":
            self._revoked_sessions.pop(ident, None)
        elif kind == "subject_revoked":
            self._revoked_subjects.pop(ident, None)

    def _prune(self, now: int) -> None:
        self._pruned = time.monotonic()
        self._links = {n: v for n, v in self._links.items() if v[1] >= now}
        self._revoked_sessions = {s: u for s, u in self._revoked_sessions.items() if u >= now}
        self._revoked_subjects = {s: v for s, v in self._revoked_subjects.items() if v[1] >= now}
