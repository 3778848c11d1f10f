"""Sign-in routes and the guard in front of every viewing route (see auth.py)."""

from __future__ import annotations

from flask import Blueprint, Flask, Response, redirect, request

from rts_gateway.access.auth import SESSION_COOKIE, AuthError
from rts_gateway.access.feature import Access
from rts_gateway.responses import json_error

# Probes, Prometheus, the sign-in itself and the page's static files need no session.
OPEN_ENDPOINTS = frozenset(
    {"ops.healthz", "ops.readyz", "ops.metrics", "access.login", "access.logout", "static"}
)

SIGN_IN_PAGE = """<!doctype html><html lang="en"><head><meta charset="utf-8">
<title>Sign in</title></head><body style="font-family:sans-serif;margin:3em">
<h1>Sign in needed</h1><p>{message}</p>
<p>Ask the operator for a login link: <code>gateway login-url --base URL</code>
(with the same <code>GATEWAY_AUTH_SECRET</code> as this gateway).</p></body></html>"""


def refusal(error: AuthError, html: bool) -> Response:
    if html:
        return Response(SIGN_IN_PAGE.format(message=error), status=401, content_type="text/html")
    return json_error(401, str(error), reason=error.reason)


def protect(app: Flask, access: Access) -> None:
    """Require a session on every route but the open ones, when sign-in is configured."""
    if access.auth is None:
        return

    @app.before_request
    def require_session() -> Response | None:
        if request.endpoint is None or request.endpoint in OPEN_ENDPOINTS:
            return None  # unknown paths get their 404; open ones pass
        try:
            access.check_request()
        except AuthError as error:
            return refusal(error, html=request.endpoint == "index")
        return None


def access_routes(access: Access) -> Blueprint:
    bp = Blueprint("access", __name__)

    @bp.get("/login")
    def login() -> Response:
        auth = access.auth
        if auth is None:
            return redirect("/")  # type: ignore[return-value]
        try:
            session = auth.redeem(request.args.get("token", ""))
        except AuthError as error:
            access.refused(error)
            return refusal(error, html=True)
        response = redirect("/")
        response.set_cookie(
            SESSION_COOKIE,
            session.token,
            max_age=session.max_age,
            httponly=True,
            samesite="Lax",
            secure=request.is_secure,
            path="/",
        )
        return response  # type: ignore[return-value]

    @bp.get("/logout")
    def logout() -> Response:
        response = redirect("/")
        response.delete_cookie(SESSION_COOKIE, path="/")
        return response  # type: ignore[return-value]

    return bp
