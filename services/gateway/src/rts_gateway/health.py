"""Liveness, readiness and metrics over HTTP, composed from what each part reports.

Readiness needs the brokers to answer and the camera directory to be loaded, and turns
false as soon as a shutdown begins, so a load balancer stops sending new viewers first.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import Blueprint, Response, jsonify
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

Check = Callable[[], tuple[bool, dict[str, Any]]]


class Health:
    def __init__(self, checks: list[Check]) -> None:
        self._checks = checks
        self.stopping = False

    def readiness(self) -> tuple[bool, dict[str, Any]]:
        ready = not self.stopping
        details: dict[str, Any] = {}
        for check in self._checks:
            ok, more = check()
            ready = ready and ok
            details.update(more)
        if self.stopping:
            details["stopping"] = True
        return ready, details


def ops_routes(health: Health, registry: CollectorRegistry) -> Blueprint:
    bp = Blueprint("ops", __name__)

    @bp.get("/healthz")
    def healthz() -> Response:
        return jsonify({"status": "ok"})

    @bp.get("/readyz")
    def readyz() -> Response:
        ready, details = health.readiness()
        response = jsonify({"ready": ready, **details})
        response.status_code = 200 if ready else 503
        return response

    @bp.get("/metrics")
    def metrics() -> Response:
        return Response(generate_latest(registry), mimetype=CONTENT_TYPE_LATEST)

    return bp
