"""The composition root: the gateway's features, wired together, started and stopped.

Built inside the server's worker process (after eventlet's monkey patching), started
once, stopped on SIGTERM: viewers and browsers are let go first so streams end cleanly,
then every consumer at once (each leaves its group in parallel). The ops endpoints
(/metrics, /healthz, /readyz) get a port of their own, which no ingress routes.
"""

from __future__ import annotations

import logging
import time

from rts_common.ops import Component, OpsServer
from rts_common.tasks import PeriodicTask

from rts_gateway.access import Access
from rts_gateway.app import create_app
from rts_gateway.bridge import KafkaBridge, Runtime, create_runtime
from rts_gateway.fanout import Fanout, FanoutManager, install
from rts_gateway.feed import Feed
from rts_gateway.health import Health
from rts_gateway.metrics import GatewayMetrics
from rts_gateway.server import GatewayServer
from rts_gateway.settings import GatewaySettings
from rts_gateway.sockets import SocketServer
from rts_gateway.video import Video

log = logging.getLogger(__name__)

HEALTH_CHECK_SECONDS = 2.0


class Gateway:
    def __init__(self, settings: GatewaySettings, runtime: Runtime | None = None) -> None:
        self.settings = settings
        self.metrics = GatewayMetrics(replica=settings.replica_name)
        self.runtime = runtime or create_runtime(settings.async_mode, _callback_failed)
        self.bridge = KafkaBridge(
            settings,
            self.runtime,
            self.metrics,
            liveness_seconds=settings.consumer_liveness_seconds,
        )
        self.access = Access(settings, self.bridge, self.metrics)
        self.video = Video(settings, self.bridge, self.metrics, self.access.leases)
        self.feed = Feed(settings, self.bridge, self.metrics)
        self.health = Health(
            [self.bridge.readiness, self.video.readiness], self.components, self.metrics
        )
        # Without the Kafka broadcast, a manager of this process's clients only.
        manager = self.feed.broadcast or FanoutManager()
        self.app, self.socketio = create_app(
            settings, access=self.access, video=self.video, client_manager=manager
        )
        if self.runtime.mode == "eventlet":
            fanout = Fanout(
                self.metrics,
                backlog_bytes=settings.socketio_client_backlog_bytes,
                send_buffer=settings.socketio_send_buffer,
            )
            install(self.socketio.server, manager, fanout)
        self.sockets = SocketServer(
            self.socketio, self.metrics, self.access.authorize_socket, self.access.leases
        )
        self.video.attach(self.sockets)
        self.feed.attach(self.sockets)
        self.ops: OpsServer | None = None
        # Liveness evaluated on its own, not only when a probe asks: the component gauges
        # stay current and a part that fails is logged when it fails.
        self._health_check = PeriodicTask(
            "health-check", HEALTH_CHECK_SECONDS, self._check_health, first_delay=0
        )
        # Each replica tells its own browsers whether it reaches Kafka (the page says
        # "reconnecting" meanwhile); relaying it through Kafka would defeat the purpose.
        self.bridge.on_reachability(
            lambda ok: self.sockets.emit("status", {"kafka": ok}, local=True)
        )
        self.sockets.on_connect(
            lambda sid: self.sockets.emit(
                "status", {"kafka": self.bridge.kafka_ok}, to=sid, local=True
            )
        )
        self._stopped = False

    def start(self) -> Gateway:
        self.serve_ops()
        self.access.start()
        self.bridge.start()
        self.video.start()
        self.feed.start()
        self._health_check.start()
        log.info("gateway started", extra={"async_mode": self.runtime.mode})
        return self

    def _check_health(self) -> None:
        self.health.liveness()

    def components(self) -> list[Component]:
        """The parts that must keep running (liveness)."""
        return [
            self._health_check,
            *self.bridge.components(),
            *self.video.components(),
            *self.feed.components(),
            *self.access.components(),
        ]

    def serve_ops(self) -> OpsServer:
        """/metrics, /healthz and /readyz on the ops port (started first: probes see a
        process that is up and not yet ready)."""
        try:
            self.ops = OpsServer(
                self.metrics.registry,
                self.health.readiness,
                self.settings.ops_host,
                self.settings.ops_port,
                liveness=self.health.liveness,
            ).start()
        except OSError as exc:
            log.error(
                "cannot serve /metrics, /healthz, /readyz on port %s: %s",
                self.settings.ops_port,
                exc,
            )
            raise
        return self.ops

    def begin_shutdown(self) -> None:
        """Stop being ready, end every stream and send browsers elsewhere, so the server
        can finish its requests."""
        if self.health.stopping:
            return
        self.health.stopping = True
        self.video.close_streams()
        self.sockets.disconnect_all()

    def stop(self, timeout: float = 8.0) -> None:
        if self._stopped:
            return
        self._stopped = True
        started = time.monotonic()
        self.begin_shutdown()
        self._health_check.stop(timeout=0)
        parts = (self.feed, self.video, self.access, self.bridge)
        for part in parts:
            part.request_stop()
        for part in parts:
            part.wait_stopped(started + timeout)
        if self.ops is not None:
            self.ops.stop()
        log.info("gateway stopped", extra={"seconds": round(time.monotonic() - started, 3)})


def _callback_failed(exc: BaseException) -> None:
    log.error("app-context callback failed", exc_info=exc)


def run(settings: GatewaySettings) -> int:
    """Serve under gunicorn: one worker, which builds and starts the Gateway after fork."""
    GatewayServer(settings, lambda: Gateway(settings).start()).run()
    return 0
