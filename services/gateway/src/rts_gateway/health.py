"""Liveness, readiness and metrics over HTTP, composed from what each part reports.

Liveness (`/healthz`) fails when a part that must keep running has died or is stuck:
a consumer loop that no longer polls (or whose batches nobody takes), a background task
long overdue. Restarting the process is the cure for those, so Kubernetes should.
Readiness (`/readyz`) also needs the brokers to answer and the camera directory to be
loaded, says why not in its body, and turns false as soon as a shutdown begins, so a
load balancer stops sending new viewers first. A broker outage makes the gateway
unready, never dead: it keeps serving the page and the last frames, and resumes by
itself when Kafka is back.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any

from flask import Blueprint, Response, jsonify
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from rts_common.ops import Component, problems_of

from rts_gateway.metrics import GatewayMetrics

log = logging.getLogger(__name__)

Check = Callable[[], tuple[bool, dict[str, Any]]]


class Health:
    def __init__(
        self,
        readiness_checks: list[Check],
        components: Callable[[], Iterable[Component]],
        metrics: GatewayMetrics,
    ) -> None:
        self._checks = readiness_checks
        self._components = components
        self._up = metrics.component_up
        self._failing: set[str] = set()
        self.stopping = False

    def liveness(self) -> tuple[bool, dict[str, Any]]:
        components = list(self._components())
        problems = problems_of(components)
        for component in components:
            self._up.labels(component=component.name).set(0 if component.name in problems else 1)
        for name in problems.keys() - self._failing:
            log.error("part not running", extra={"component": name, "problem": problems[name]})
        for name in self._failing - problems.keys():
            log.info("part running again", extra={"component": name})
        self._failing = set(problems)
        return not problems, {"problems": problems} if problems else {}

    def readiness(self) -> tuple[bool, dict[str, Any]]:
        ready, details = self.liveness()
        ready = ready and not self.stopping
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
        alive, details = health.liveness()
        response = jsonify({"status": "ok" if alive else "failing", **details})
        response.status_code = 200 if alive else 503
        return response

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
