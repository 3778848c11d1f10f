"""`/metrics`, `/healthz` and `/readyz` on a small HTTP port of their own, apart from what
users reach: probes and Prometheus get them, no ingress routes them.

Liveness (`/healthz`) fails when a part that must keep running (a loop, a background
task) died or is stuck, with the reasons: restarting the process is the cure, so
Kubernetes does. Readiness (`/readyz`) asks the service (is its source delivering? is the
broker reachable?) and answers 503 with the reasons when not, which is what Kubernetes
probes and the local supervisor look at.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from rts_common.settings import Settings, setting

log = logging.getLogger(__name__)

Readiness = Callable[[], tuple[bool, dict[str, Any]]]


class Component(Protocol):
    """Something that must keep running: a PeriodicTask, a Heartbeat, a consumer loop."""

    @property
    def name(self) -> str: ...

    def problem(self, now: float) -> str | None: ...


def problems_of(components: Iterable[Component]) -> dict[str, str]:
    """What is wrong with each component that is not running as it should."""
    now = time.monotonic()
    return {c.name: problem for c in components if (problem := c.problem(now)) is not None}


class OpsSettings(Settings):
    ops_host: str = setting("0.0.0.0", "Address of the /metrics, /healthz, /readyz server")
    ops_port: int = setting(
        9100, "Port of the /metrics, /healthz, /readyz server (0: pick a free one)", ge=0, le=65535
    )


def always_ready() -> tuple[bool, dict[str, Any]]:
    return True, {}


class OpsServer:
    def __init__(
        self,
        registry: CollectorRegistry,
        readiness: Readiness = always_ready,
        host: str = "0.0.0.0",
        port: int = 0,
        components: Callable[[], Iterable[Component]] = list,
        liveness: Readiness | None = None,
    ) -> None:
        """/healthz fails with the problems of `components`, or asks `liveness` (a service
        that keeps metrics and logs of its parts' health evaluates them itself)."""
        self._registry = registry
        self._readiness = readiness
        self._components = components
        self._liveness = liveness
        self._server = ThreadingHTTPServer((host, port), self._handler_class())
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="ops-http", daemon=True
        )

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def start(self) -> OpsServer:
        self._thread.start()
        log.info("ops endpoints listening", extra={"port": self.port})
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        ops = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0]
                if path == "/metrics":
                    self._send(200, CONTENT_TYPE_LATEST, generate_latest(ops._registry))
                elif path == "/healthz":
                    if ops._liveness is not None:
                        alive, details = self._check(ops._liveness)
                        problems = details.get("problems") or ({} if alive else details)
                    else:
                        problems = problems_of(ops._components())
                    if problems:
                        self._json(503, {"status": "failing", "problems": problems})
                    else:
                        self._json(200, {"status": "ok"})
                elif path == "/readyz":
                    ready, details = self._check(ops._readiness)
                    self._json(200 if ready else 503, {"ready": ready, **details})
                else:
                    self._json(404, {"error": "not found", "path": path})

            @staticmethod
            def _check(check: Readiness) -> tuple[bool, dict[str, Any]]:
                try:
                    return check()
                except Exception as exc:  # noqa: BLE001 - a failing check means "no"
                    return False, {"error": repr(exc)}

            def _json(self, status: int, body: dict[str, Any]) -> None:
                self._send(status, "application/json", json.dumps(body, default=str).encode())

            def _send(self, status: int, content_type: str, body: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass  # probes every few seconds would flood the logs

        return Handler
