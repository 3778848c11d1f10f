"""Responses every route shares: JSON errors with an `error` message (one helper, and
Flask's own errors registered once), 429s with Retry-After, and the security headers on
every answer.

The dashboard loads nothing from elsewhere and runs no inline script, so its policy is
`'self'` throughout; images also come from `blob:` URLs (the camera wall's tiles) and
Socket.IO connects back to the page's own origin.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import Flask, Response, jsonify, request

from rts_gateway.grants import LimitReached

CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "img-src 'self' blob: data:",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    # For browsers that predate frame-ancestors.
    "X-Frame-Options": "DENY",
}
# Streams, snapshots, the API and sign-in answers are for one viewer, now: never stored by
# a browser or a proxy. The static bundle is versioned by its content and may be cached.
NO_STORE = "no-store"


def json_error(status: int, message: str, **details: Any) -> Response:
    response = jsonify({"error": message, **details})
    response.status_code = status
    return response


def limited(hit: LimitReached) -> Response:
    response = json_error(429, str(hit), limit=hit.limit)
    response.headers["Retry-After"] = str(hit.retry_after)
    return response


def register_error_handlers(app: Flask, on_too_large: Callable[[], None] | None = None) -> None:
    @app.errorhandler(404)
    def not_found(_error: Exception) -> Response:
        return json_error(404, "not found")

    @app.errorhandler(405)
    def not_allowed(_error: Exception) -> Response:
        return json_error(405, "method not allowed")

    @app.errorhandler(413)
    def too_large(_error: Exception) -> Response:
        if on_too_large is not None:
            on_too_large()
        return json_error(413, "request too large")


def register_security_headers(app: Flask) -> None:
    @app.after_request
    def secure(response: Response) -> Response:
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        if request.endpoint != "static":
            response.headers["Cache-Control"] = NO_STORE
        return response
