"""`gateway login-url`: print a one-time sign-in link; `gateway revoke`: end sessions on
every replica. Both read the gateway's own settings from the environment
(GATEWAY_AUTH_SECRET, the KAFKA_* connection), as the gateway does."""

from __future__ import annotations

import argparse
import sys
import time

from confluent_kafka import KafkaError, Message, Producer
from rts_common.contracts import CAMERA_ID, GATEWAY_SESSIONS, SessionRecord
from rts_common.signin import ROLES, Authenticator

from rts_gateway.settings import GatewaySettings


def login_url(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="gateway login-url",
        description="Print a one-time login link for the gateway (GATEWAY_AUTH_SECRET and "
        "GATEWAY_LOGIN_TTL_SECONDS come from the environment, as for the gateway itself). "
        "The token is in the link's #fragment, which browsers never send to a server.",
    )
    parser.add_argument("--base", default="", help="the gateway's URL as browsers reach it")
    parser.add_argument("--subject", default="viewer", help="who the session is for (logged)")
    parser.add_argument(
        "--camera",
        action="append",
        default=None,
        metavar="ID",
        help="limit the session to this camera (repeat for more; default: every camera)",
    )
    parser.add_argument(
        "--role",
        choices=ROLES,
        default="viewer",
        help="viewer: live video and the dashboard; operator: also replays of recorded "
        "video and revoking sessions",
    )
    args = parser.parse_args(argv)
    settings = GatewaySettings.load([])
    secret = settings.auth_secret.get_secret_value()
    if not secret:
        parser.error("GATEWAY_AUTH_SECRET is not set: the gateway does not require sign-in")
    for camera in args.camera or ():
        if not CAMERA_ID.fullmatch(camera):
            parser.error(f"--camera {camera!r} is not a camera id")
    auth = Authenticator(
        secret, login_ttl=settings.login_ttl_seconds, session_ttl=settings.session_ttl_seconds
    )
    token = auth.login_token(args.subject, cameras=args.camera, role=args.role)
    base = (args.base or f"http://127.0.0.1:{settings.port}").rstrip("/")
    print(f"{base}/login#token={token}")  # noqa: T201 - its output
    return 0


def revoke(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="gateway revoke",
        description="End a session, or every session of a subject, on every gateway replica "
        "(through Kafka's gateway-sessions topic; the KAFKA_* variables as for the "
        "gateway). Their open streams and sockets close within a second or two. Session "
        "ids and subjects are in the gateway's audit log ('signed in' lines).",
    )
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--session", help="a session id")
    which.add_argument("--subject", help="every session of this subject opened until now")
    args = parser.parse_args(argv)
    settings = GatewaySettings.load([])
    now = time.time_ns()
    until = now + settings.session_ttl_seconds * 10**9
    fact = (
        SessionRecord(kind="session_revoked", id=args.session, ts=now, until=until)
        if args.session
        else SessionRecord(kind="subject_revoked", id=args.subject, ts=now, until=until)
    )
    producer = Producer(
        settings.client_config("gateway-revoke") | {"acks": "all", "enable.idempotence": True}
    )
    failures: list[KafkaError] = []

    def delivered(error: KafkaError | None, _message: Message) -> None:
        if error is not None:
            failures.append(error)

    producer.produce(
        settings.topic_name(GATEWAY_SESSIONS),
        fact.model_dump_json().encode(),
        key=fact.key.encode(),
        on_delivery=delivered,
    )
    if producer.flush(15) or failures:
        reason = failures[0].str() if failures else "Kafka did not answer within 15 s"
        print(f"not revoked: {reason}", file=sys.stderr)  # noqa: T201 - its output
        return 1
    print(f"revoked {fact.kind.split('_')[0]} {fact.id}")  # noqa: T201 - its output
    return 0
