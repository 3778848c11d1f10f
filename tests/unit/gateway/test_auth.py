"""Sign-in: login links, session cookies, and what needs them."""

import time

import pytest
from flask.testing import FlaskClient
from hypothesis import given, settings
from hypothesis import strategies as st
from rts_gateway.access.auth import SESSION_COOKIE, Authenticator, AuthError
from rts_gateway.service import Gateway

from tests.unit.gateway.conftest import MakeGateway

SECRET = "test-secret-0123456789"


def test_a_login_token_opens_one_session_once() -> None:
    auth = Authenticator(SECRET, login_ttl=60, session_ttl=3600)
    session = auth.redeem(auth.login_token("ops"))
    assert auth.check_session(session.token) == "ops"
    with pytest.raises(AuthError) as info:
        auth.redeem(auth.login_token()[:-3] + "abc")
    assert info.value.reason == "invalid"


def test_a_login_link_cannot_be_used_twice() -> None:
    auth = Authenticator(SECRET, login_ttl=60, session_ttl=3600)
    token = auth.login_token()
    auth.redeem(token)
    with pytest.raises(AuthError) as info:
        auth.redeem(token)
    assert info.value.reason == "reused"


def test_expired_and_foreign_credentials_are_refused() -> None:
    auth = Authenticator(SECRET, login_ttl=1, session_ttl=1)
    other = Authenticator("another-secret-9876543210", login_ttl=60, session_ttl=60)
    with pytest.raises(AuthError) as info:
        auth.check_session(other.redeem(other.login_token()).token)
    assert info.value.reason == "invalid"
    token = auth.login_token()
    session = auth.redeem(auth.login_token())
    time.sleep(2.1)
    for attempt in (lambda: auth.redeem(token), lambda: auth.check_session(session.token)):
        with pytest.raises(AuthError) as info:
            attempt()
        assert info.value.reason == "expired"
    with pytest.raises(AuthError) as info:
        auth.check_session(None)
    assert info.value.reason == "missing"


def test_short_secrets_are_refused() -> None:
    with pytest.raises(ValueError, match="16 characters"):
        Authenticator("short", login_ttl=60, session_ttl=60)


@pytest.fixture
def gateway(make_gateway: MakeGateway) -> Gateway:
    return make_gateway(auth_secret=SECRET)


def test_viewing_needs_a_session_but_probes_and_metrics_do_not(
    client: FlaskClient, gateway: Gateway
) -> None:
    for path in ("/api/cameras", "/stream/front", "/kaf", "/snapshot/front.jpg"):
        response = client.get(path)
        assert response.status_code == 401, path
        assert response.json["reason"] == "missing"
    page = client.get("/")
    assert page.status_code == 401
    assert b"login-url" in page.data
    for path in ("/healthz", "/metrics"):
        assert client.get(path).status_code == 200
    assert client.get("/readyz").status_code == 503  # not ready, but answered
    assert (
        gateway.metrics.registry.get_sample_value(
            "gateway_auth_failures_total", {"reason": "missing"}
        )
        == 5
    )


def test_the_login_link_sets_an_httponly_cookie_that_opens_everything(
    client: FlaskClient, gateway: Gateway
) -> None:
    assert gateway.access.auth is not None
    response = client.get(f"/login?token={gateway.access.auth.login_token()}")
    assert response.status_code == 302
    assert response.headers["Location"] == "/"
    cookie = response.headers["Set-Cookie"]
    assert cookie.startswith(f"{SESSION_COOKIE}=")
    assert "HttpOnly" in cookie
    assert "SameSite=Lax" in cookie
    assert client.get("/api/cameras").status_code == 200
    assert client.get("/").status_code == 200
    client.get("/logout")
    assert client.get("/api/cameras").status_code == 401


def test_a_bearer_session_token_works_for_scripts(client: FlaskClient, gateway: Gateway) -> None:
    assert gateway.access.auth is not None
    session = gateway.access.auth.redeem(gateway.access.auth.login_token())
    response = client.get("/api/cameras", headers={"Authorization": f"Bearer {session.token}"})
    assert response.status_code == 200
    bad = client.get("/api/cameras", headers={"Authorization": "Bearer nonsense"})
    assert bad.status_code == 401
    assert bad.json["reason"] == "invalid"


def test_socketio_connections_need_a_session(gateway: Gateway) -> None:
    assert gateway.access.auth is not None
    app, socketio = gateway.app, gateway.socketio
    anonymous = socketio.test_client(app)
    assert not anonymous.is_connected()
    http = app.test_client()
    http.get(f"/login?token={gateway.access.auth.login_token()}")
    signed_in = socketio.test_client(app, flask_test_client=http)
    assert signed_in.is_connected()
    assert gateway.metrics.registry.get_sample_value("gateway_socketio_clients") == 1


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=300))
def test_any_token_is_a_session_or_an_auth_error(token: str) -> None:
    auth = Authenticator(SECRET, login_ttl=60, session_ttl=60)
    reasons = set()
    for check in (auth.check_session, auth.redeem):
        try:
            check(token)
        except AuthError as error:
            reasons.add(error.reason)
    assert reasons <= {"missing", "invalid", "expired", "reused"}
