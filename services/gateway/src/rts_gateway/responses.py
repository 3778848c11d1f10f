"""Error responses: JSON with an `error` message, so scripts and the dashboard can show
what went wrong; one helper for every route, registered once for Flask's own errors."""

from __future__ import annotations

from typing import Any

from flask import Flask, Response, jsonify


def json_error(status: int, message: str, **details: Any) -> Response:
    response = jsonify({"error": message, **details})
    response.status_code = status
    return response


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(404)
    def not_found(_error: Exception) -> Response:
        return json_error(404, "not found")

    @app.errorhandler(405)
    def not_allowed(_error: Exception) -> Response:
        return json_error(405, "method not allowed")
