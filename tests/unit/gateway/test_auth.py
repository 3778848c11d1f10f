"""Sign-in: login links, sessions and their scope, the shared ledger of revoked sessions
and used links (fed real Message objects), and what needs a session."""

import time

import pytest
from confluent_kafka import Message
from flask.testing import FlaskClient
from hypothesis import given, settings
from hypothesis import strategies as st
from rts_common.contracts import GATEWAY_SESSIONS, VIDEO_CAMERAS, SessionRecord
from rts_common.signin import Authenticator, AuthError, Grant
from rts_gateway.grants import Leases, LimitReached
from rts_gateway.metrics import GatewayMetrics
from rts_gateway.service import Gateway

from tests.unit.gateway.conftest import MakeGateway
from tests.unit.gateway.helpers import batch_of, status_message

SECRET = "test-secret-0123456789"


def test_a_login_token_opens_a_session_with_its_scope() -> None:
    auth = Authenticator(SECRET, login_ttl=60, session_ttl=3600)
    link = auth.open_link(auth.login_token("ops", cameras=["b", "a"], role="operator"))
    assert (link.subject, link.role, link.cameras) == ("ops", "operator", frozenset({"a", "b"}))
    session = auth.session(link)
    grant = auth.check_session(session.token)
    assert grant == session.grant.__class__(
        "ops",
        session.grant.session,
        "operator",
        frozenset({"a", "b"}),
        grant.issued_at,
        grant.issued_at + 3600,
    )
    assert grant.sees("a")
    assert not grant.sees("c")
    assert grant.operates
    everything = auth.check_session(auth.session(auth.open_link(auth.login_token())).token)
    assert everything.cameras is None
    assert not everything.operates
    # Every trade makes a session of its own: a revocation names exactly one.
    assert auth.session(link).grant.session != session.grant.session


def test_expired_forged_and_foreign_credentials_are_refused() -> None:
    auth = Authenticator(SECRET, login_ttl=1, session_ttl=1)
    other = Authenticator("another-secret-9876543210", login_ttl=60, session_ttl=60)
    with pytest.raises(AuthError) as info:
        auth.check_session(other.session(other.open_link(other.login_token())).token)
    assert info.value.reason == "invalid"
    with pytest.raises(AuthError) as info:
        auth.open_link(auth.login_token()[:-3] + "abc")
    assert info.value.reason == "invalid"
    token = auth.login_token()
    session = auth.session(auth.open_link(auth.login_token()))
    time.sleep(2.1)
    for attempt in (lambda: auth.open_link(token), lambda: auth.check_session(session.token)):
        with pytest.raises(AuthError) as info:
            attempt()
        assert info.value.reason == "expired"
    with pytest.raises(AuthError) as info:
        auth.check_session(None)
    assert info.value.reason == "missing"


def test_short_secrets_and_unknown_roles_are_refused() -> None:
    with pytest.raises(ValueError, match="16 characters"):
        Authenticator("short", login_ttl=60, session_ttl=60)
    auth = Authenticator(SECRET, login_ttl=60, session_ttl=60)
    with pytest.raises(ValueError, match="role"):
        auth.login_token(role="admin")  # type: ignore[arg-type]


def fact(offset: int, kind: str, ident: str, **fields: object) -> Message:
    now = time.time_ns()
    record = SessionRecord.model_validate(
        {"kind": kind, "id": ident, "ts": now, "until": now + 10**12, **fields}
    )
    return Message(
        topic="gateway-sessions",
        partition=0,
        offset=offset,
        key=record.key.encode(),
        value=record.model_dump_json().encode(),
    )


@pytest.fixture
def gateway(make_gateway: MakeGateway) -> Gateway:
    """Sign-in on, the ledger caught up with an empty topic, one camera "front"."""
    gateway = make_gateway(auth_secret=SECRET)
    assert gateway.access.ledger is not None
    gateway.access.ledger.assigned({0: 0})
    directory = gateway.video.directory
    directory.on_batch(
        batch_of(
            VIDEO_CAMERAS,
            [status_message("front", 0), status_message("back", 1, offset=1)],
            gateway.metrics,
        )
    )
    directory.assigned({0: 2})
    return gateway


def token_for(gateway: Gateway, **scope: object) -> str:
    auth = gateway.access.auth
    assert auth is not None
    return auth.session(auth.open_link(auth.login_token(**scope))).token  # type: ignore[arg-type]


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_viewing_needs_a_session(client: FlaskClient, gateway: Gateway) -> None:
    for path in ("/api/cameras", "/stream/front", "/kaf", "/snapshot/front.jpg"):
        response = client.get(path)
        assert response.status_code == 401, path
        assert response.json["reason"] == "missing"
    page = client.get("/")
    assert page.status_code == 401
    assert b"login-url" in page.data
    sample = gateway.metrics.registry.get_sample_value
    assert sample("gateway_auth_failures_total", {"reason": "missing"}) == 5
    assert client.get("/api/cameras", headers=bearer(token_for(gateway))).status_code == 200
    bad = client.get("/api/cameras", headers=bearer("nonsense"))
    assert (bad.status_code, bad.json["reason"]) == (401, "invalid")


def test_sign_in_fails_closed_until_the_ledger_is_read(
    make_gateway: MakeGateway, client: FlaskClient
) -> None:
    gateway = make_gateway(auth_secret=SECRET)
    response = gateway.app.test_client().get("/api/cameras", headers=bearer(token_for(gateway)))
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "5"


def test_revoked_sessions_and_subjects_are_refused(client: FlaskClient, gateway: Gateway) -> None:
    ledger = gateway.access.ledger
    assert ledger is not None
    first, second, alices = (
        token_for(gateway),
        token_for(gateway),
        token_for(gateway, subject="alice"),
    )
    auth = gateway.access.auth
    assert auth is not None
    ledger.on_batch(
        batch_of(
            GATEWAY_SESSIONS,
            [
                fact(0, "session_revoked", auth.check_session(first).session),
                fact(1, "subject_revoked", "alice"),
            ],
            gateway.metrics,
        )
    )
    for token in (first, alices):
        response = client.get("/api/cameras", headers=bearer(token))
        assert (response.status_code, response.json["reason"]) == (401, "revoked")
    assert client.get("/api/cameras", headers=bearer(second)).status_code == 200
    # A session alice opens after the revocation is valid (sessions carry whole seconds).
    time.sleep(1.1)
    assert (
        client.get("/api/cameras", headers=bearer(token_for(gateway, subject="alice"))).status_code
        == 200
    )


def test_the_first_trade_of_a_link_wins(gateway: Gateway) -> None:
    ledger = gateway.access.ledger
    assert ledger is not None
    ledger.on_batch(
        batch_of(
            GATEWAY_SESSIONS,
            [
                fact(0, "link_used", "nonce-1", claim="mine"),
                fact(1, "link_used", "nonce-1", claim="theirs"),
            ],
            gateway.metrics,
        )
    )
    assert ledger._links["nonce-1"][0] == "mine"  # the decision's input
    assert ledger.caught_up


def test_a_scoped_session_sees_only_its_cameras_and_a_viewer_cannot_replay(
    client: FlaskClient, gateway: Gateway
) -> None:
    token = token_for(gateway, cameras=["front"])
    listed = client.get("/api/cameras", headers=bearer(token)).json["cameras"]
    assert [c["camera"] for c in listed] == ["front"]
    for path in ("/stream/back", "/kaf/back", "/snapshot/back.jpg"):
        response = client.get(path, headers=bearer(token))
        assert response.status_code == 404, path
        assert response.json["cameras"] == ["front"]
    replay = client.get("/stream/front?from=-5s", headers=bearer(token))
    assert replay.status_code == 403
    operator = client.get(
        "/stream/front?from=-5s&fps=0", headers=bearer(token_for(gateway, role="operator"))
    )
    assert operator.status_code == 400  # past the role check, stopped by the bad fps


def test_posts_from_another_site_are_refused(client: FlaskClient) -> None:
    refused = [
        {"Origin": "https://evil.example"},
        {"Sec-Fetch-Site": "cross-site", "Origin": "null"},
        {"Sec-Fetch-Site": "same-site", "Origin": "https://other.localhost"},
        {"Origin": "null"},
    ]
    for headers in refused:
        assert client.post("/logout", headers=headers).status_code == 403, headers
    accepted = [
        {"Origin": "http://localhost"},
        # A browser's form on a page with Referrer-Policy: no-referrer.
        {"Sec-Fetch-Site": "same-origin", "Origin": "null"},
        {},  # a script
    ]
    for headers in accepted:
        assert client.post("/logout", headers=headers).status_code == 303, headers
    assert client.get("/logout").status_code == 405


def test_a_login_link_page_never_takes_the_token_from_the_query(client: FlaskClient) -> None:
    page = client.get("/login")
    assert page.status_code == 200
    assert b"login.js" in page.data
    assert client.get("/login?token=abc").status_code == 400


def test_socketio_connections_need_a_session(gateway: Gateway) -> None:
    app, socketio = gateway.app, gateway.socketio
    anonymous = socketio.test_client(app)
    assert not anonymous.is_connected()
    signed_in = socketio.test_client(app, headers=bearer(token_for(gateway)))
    assert signed_in.is_connected()
    assert gateway.metrics.registry.get_sample_value("gateway_socketio_clients") == 1


def grant(session: str, subject: str = "s", expires_at: float | None = None) -> Grant:
    now = time.time()
    return Grant(subject, session, "viewer", None, now - 1, expires_at or now + 60)


def test_leases_cap_a_session_and_end_with_it() -> None:
    metrics = GatewayMetrics()
    leases = Leases(metrics)
    closed: list[str] = []
    mine, other = grant("a", "alice"), grant("b", "bob")
    for i in range(2):
        leases.hold(mine, "stream", lambda i=i: closed.append(f"a{i}"), limit=2)
    with pytest.raises(LimitReached) as info:
        leases.hold(mine, "stream", lambda: None, limit=2)
    assert info.value.limit == "streams_per_session"
    leases.hold(other, "stream", lambda: closed.append("b"), limit=2)
    assert leases.end_session("a", "revoked") == 2
    assert sorted(closed) == ["a0", "a1"]
    assert leases.end_subject("bob", before=time.time()) == 1
    assert leases.hold(None, "stream", lambda: None, limit=0) is None  # sign-in off
    expiring = grant("c", expires_at=time.time() - 1)
    leases.hold(expiring, "socket", lambda: closed.append("c"))
    leases.expire()
    assert closed[-1] == "c"
    sample = metrics.registry.get_sample_value
    assert sample("gateway_limit_hits_total", {"limit": "streams_per_session"}) == 1
    assert sample("gateway_session_closes_total", {"reason": "expired", "kind": "socket"}) == 1


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=300))
def test_any_token_is_a_session_or_an_auth_error(token: str) -> None:
    auth = Authenticator(SECRET, login_ttl=60, session_ttl=60)
    reasons = set()
    for check in (auth.check_session, auth.open_link):
        try:
            check(token)
        except AuthError as error:
            reasons.add(error.reason)
    assert reasons <= {"missing", "invalid", "expired"}
