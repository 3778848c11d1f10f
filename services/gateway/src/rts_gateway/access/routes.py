"""Sign-in routes, the guard in front of every viewing route, and the one in front of
Socket.IO's handshake (see rts_common.signin for the tokens).

Changing state takes a POST (sign-in, sign-out, revocation), from this gateway's own
pages: a POST whose Origin names another site is refused, so another site cannot sign a
browser out or into a session of its choosing.
"""

from __future__ import annotations

import json
import urllib.parse
from collections.abc import Callable, Iterable
from typing import Any

from flask import Blueprint, Flask, Response, redirect, render_template, request
from rts_common.signin import SESSION_COOKIE, AuthError

from rts_gateway.access.feature import Access
from rts_gateway.access.ledger import LedgerUnavailable
from rts_gateway.grants import LimitReached, bind, current_grant
from rts_gateway.responses import json_error, limited

# Sign-in itself and the page's static files need no session.
OPEN_ENDPOINTS = frozenset({"access.login_page", "access.login", "access.logout", "static"})

SIGN_IN_PAGE = """<!doctype html><html lang="en"><head><meta charset="utf-8">
<title>Sign in</title></head><body>
<h1>Sign in needed</h1><p>{message}</p>
<p>Ask the operator for a login link: <code>gateway login-url --base URL</code>
(with the same <code>GATEWAY_AUTH_SECRET</code> as this gateway).</p></body></html>"""

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def refusal(error: AuthError, html: bool) -> Response:
    if html:
        return Response(
            SIGN_IN_PAGE.format(message=error), status=error.status, content_type="text/html"
        )
    response = json_error(error.status, str(error), reason=error.reason)
    if error.status == 503:
        response.headers["Retry-After"] = "5"
    return response


def protect(app: Flask, access: Access) -> None:
    """Require a session on every route but the open ones, when sign-in is configured;
    the route finds the request's grant with `grants.current_grant()`."""
    if access.auth is None:
        return

    @app.before_request
    def require_session() -> Response | None:
        if request.endpoint is None or request.endpoint in OPEN_ENDPOINTS:
            return None  # unknown paths get their 404; open ones pass
        try:
            bind(access.check_request())
        except AuthError as error:
            return refusal(error, html=request.endpoint == "index")
        return None


def same_site(
    fetch_site: str | None, origin: str | None, host: str, allowed: Iterable[str]
) -> bool:
    """Whether a state-changing request came from this gateway's pages (or an allowed
    origin). Browsers say where a request comes from in Sec-Fetch-Site; without it, the
    Origin they send with every POST tells (but under `Referrer-Policy: no-referrer`, which
    every page here has, a browser's own POSTs carry `Origin: null`, hence the first).
    A request with neither (a script) is not a cross-site request."""
    if origin and origin.rstrip("/") in allowed:
        return True
    if fetch_site is not None:
        return fetch_site in ("same-origin", "none")
    if not origin:
        return True
    return urllib.parse.urlsplit(origin).netloc == host


def access_routes(access: Access, allowed_origins: Iterable[str]) -> Blueprint:
    bp = Blueprint("access", __name__)
    allowed = frozenset(allowed_origins)

    @bp.before_request
    def cross_site_posts() -> Response | None:
        headers = request.headers
        if request.method == "POST" and not same_site(
            headers.get("Sec-Fetch-Site"), headers.get("Origin"), request.host, allowed
        ):
            return json_error(403, "cross-site request refused")
        return None

    def client() -> str:
        return access.proxies.client(request.environ)

    @bp.get("/login")
    def login_page() -> Response:
        if access.auth is None:
            return redirect("/")  # type: ignore[return-value]
        if "token" in request.args:
            # A token in the query string is in every log it passed through: refuse it,
            # so nobody gets used to links of that shape.
            return Response(
                SIGN_IN_PAGE.format(
                    message="This link carries its token where proxies log "
                    "it. Ask for a new link (they end in #token=...)."
                ),
                status=400,
                content_type="text/html",
            )
        return Response(render_template("login.html"), content_type="text/html")

    @bp.post("/login")
    def login() -> Response:
        auth = access.auth
        if auth is None:
            return json_error(404, "sign-in is off on this gateway")
        token = request.form.get("token") or _json_field("token")
        try:
            session = access.sign_in(token, client())
        except LimitReached as hit:
            return limited(hit)
        except AuthError as error:
            return refusal(error, html=False)
        grant = session.grant
        response = Response(
            json.dumps(
                {
                    "subject": grant.subject,
                    "session": grant.session,
                    "role": grant.role,
                    "cameras": sorted(grant.cameras) if grant.cameras is not None else None,
                    "expires": int(grant.expires_at),
                }
            ),
            content_type="application/json",
        )
        response.set_cookie(
            SESSION_COOKIE,
            session.token,
            max_age=auth.session_ttl,
            httponly=True,
            samesite="Lax",
            # True when the request came over TLS, or through a proxy of --trusted-proxies
            # that says it did (gunicorn's forwarded_allow_ips).
            secure=request.is_secure,
            path="/",
        )
        return response

    @bp.post("/logout")
    def logout() -> Response:
        response = redirect("/", code=303)
        response.delete_cookie(SESSION_COOKIE, path="/")
        if access.auth is None:
            return response  # type: ignore[return-value]
        try:
            grant = access.check_request()
        except AuthError:
            return response  # type: ignore[return-value] # nothing valid to end
        if grant is not None:
            try:
                access.sign_out(grant, client())
            except LedgerUnavailable:
                return json_error(503, "cannot end the session now; try again in a moment")
        return response  # type: ignore[return-value]

    @bp.post("/api/sessions/revoke")
    def revoke() -> Response:
        grant = current_grant()
        if grant is None or not grant.operates:
            return json_error(403, "revoking sessions needs an operator's sign-in")
        session, subject = _json_field("session"), _json_field("subject")
        if not session and not subject:
            return json_error(400, 'give {"session": id} or {"subject": name}')
        try:
            access.revoke(grant, session=session or None, subject=subject or None)
        except LedgerUnavailable:
            return json_error(503, "cannot revoke now; try again in a moment")
        return Response(status=204)

    return bp


def _json_field(name: str) -> str:
    body = request.get_json(silent=True)
    value = body.get(name) if isinstance(body, dict) else None
    return value if isinstance(value, str) else ""


def guard_handshakes(app: WSGIApp, access: Access, *, path: str, max_message_bytes: int) -> WSGIApp:
    """WSGI middleware in front of Socket.IO: refuses an Engine.IO handshake (a request
    without `sid`) that carries no valid session, before Engine.IO creates a session for
    it, and any message body larger than `max_message_bytes`. Both are counted in
    `gateway_limit_hits_total`."""
    prefix = "/" + path.strip("/")

    def middleware(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if not str(environ.get("PATH_INFO", "")).startswith(prefix):
            return app(environ, start_response)
        length = environ.get("CONTENT_LENGTH") or "0"
        if length.isdigit() and int(length) > max_message_bytes:
            access.leases.hit("message_size")
            return _answer(start_response, 413, {"error": "message too large"})
        query = urllib.parse.parse_qs(str(environ.get("QUERY_STRING", "")))
        if "sid" not in query and access.auth is not None:
            try:
                access.check_environ(environ)
            except AuthError as error:
                access.leases.hit("socketio_unauthenticated")
                return _answer(
                    start_response, error.status, {"error": str(error), "reason": error.reason}
                )
        return app(environ, start_response)

    return middleware


def _answer(start_response: Callable[..., Any], status: int, body: dict[str, str]) -> list[bytes]:
    data = json.dumps(body).encode()
    reasons = {401: "UNAUTHORIZED", 413: "CONTENT TOO LARGE", 503: "SERVICE UNAVAILABLE"}
    start_response(
        f"{status} {reasons.get(status, 'ERROR')}",
        [
            ("Content-Type", "application/json"),
            ("Content-Length", str(len(data))),
            ("Cache-Control", "no-store"),
        ],
    )
    return [data]
