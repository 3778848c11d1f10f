"""The gateway's parts, wired together, with their background tasks and shutdown.

Built inside the server's worker process (after eventlet's monkey patching), started
once, stopped on SIGTERM: viewers are closed first so streams end cleanly, then the
consumers.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Callable
from typing import Any

from confluent_kafka import Consumer, KafkaError
from rts_common.contracts import (
    DASHBOARD_BROADCAST,
    PLAYBACK_EVENTS,
    VIDEO_CAMERAS,
    VIDEO_DETECTIONS,
    VIDEO_FRAMES,
)

from rts_gateway.auth import Authenticator
from rts_gateway.broadcast import KafkaBroadcastManager
from rts_gateway.cameras import CameraDirectory
from rts_gateway.dashboard import DashboardFeed
from rts_gateway.frames import FrameHub
from rts_gateway.kafka import ConsumerLoop
from rts_gateway.metrics import GatewayMetrics
from rts_gateway.replay import Replay
from rts_gateway.runtime import Runtime, create_runtime
from rts_gateway.settings import GatewaySettings
from rts_gateway.wall import CameraWall

log = logging.getLogger(__name__)

LOOP_TICK = 0.1


class Health:
    """Readiness: the broker answers and the camera directory has loaded."""

    def __init__(self) -> None:
        self.kafka_ok = False
        self.kafka_error: str | None = None
        self.checked_at = 0.0
        self.directory: CameraDirectory | None = None
        self.stopping = False

    def readiness(self) -> tuple[bool, dict[str, Any]]:
        cameras_loaded = bool(self.directory and self.directory.caught_up)
        ready = self.kafka_ok and cameras_loaded and not self.stopping
        details: dict[str, Any] = {"kafka": self.kafka_ok, "cameras_loaded": cameras_loaded}
        if self.kafka_error and not self.kafka_ok:
            details["kafka_error"] = self.kafka_error
        if self.stopping:
            details["stopping"] = True
        return ready, details


class Gateway:
    def __init__(self, settings: GatewaySettings, runtime: Runtime | None = None) -> None:
        self.settings = settings
        self.metrics = GatewayMetrics()
        self.runtime = runtime or create_runtime(settings.async_mode, self._callback_failed)
        self.health = Health()
        self.frames_topic = settings.topic_name(VIDEO_FRAMES)
        self.directory = CameraDirectory(
            settings.topic_name(VIDEO_CAMERAS), self.metrics, settings.camera_max_age_seconds
        )
        self.health.directory = self.directory
        self.directory_loop = ConsumerLoop(
            self.runtime,
            self.consumer_config("directory"),
            self.directory.on_messages,
            name="directory",
            poll_timeout=0.5,
            on_error=self._kafka_error,
        )
        self.frames_loop = ConsumerLoop(
            self.runtime,
            self.consumer_config("frames", queued_kbytes=16 * 1024),
            self._on_frames,
            name="frames",
            on_error=self._kafka_error,
        )
        self.hub = FrameHub(
            self.frames_topic,
            self.frames_loop,
            self.directory,
            self.metrics,
            start_seconds=settings.frame_start_seconds,
            release_after=settings.release_after_seconds,
            stall_timeout=settings.stall_timeout_seconds,
            max_frame_bytes=settings.max_frame_bytes,
        )
        self.owner = f"{socket.gethostname()}-{os.getpid()}"
        self.dashboard = DashboardFeed(
            self.runtime,
            self.group_consumer_config(),
            settings.topic_name(PLAYBACK_EVENTS),
            settings.topic_name(VIDEO_DETECTIONS),
            self.metrics,
            owner=self.owner,
            event_sample_rate=settings.event_sample_rate,
        )
        self.wall = CameraWall(
            self.runtime,
            self.hub,
            self.directory,
            self.metrics,
            fps=settings.wall_fps,
            max_width=settings.wall_width,
            quality=settings.wall_quality,
        )
        secret = settings.auth_secret.get_secret_value()
        self.auth = (
            Authenticator(
                secret,
                login_ttl=settings.login_ttl_seconds,
                session_ttl=settings.session_ttl_seconds,
            )
            if secret
            else None
        )
        self._replays = 0
        self._stopped = False
        self._socketio: Any = None

    def consumer_config(self, purpose: str, queued_kbytes: int = 8 * 1024) -> dict[str, Any]:
        """A consumer that reads by direct assignment: no group membership, no commits."""
        return self.settings.client_config(f"gateway-{purpose}") | {
            # librdkafka insists on a group id even for consumers that never join a group.
            "group.id": f"gateway-direct-{purpose}",
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            # Bound what librdkafka prefetches per partition: frames are large.
            "queued.max.messages.kbytes": queued_kbytes,
            "fetch.wait.max.ms": 50,
        }

    def group_consumer_config(self) -> dict[str, Any]:
        return self.settings.client_config("gateway-dashboard") | {
            "group.id": self.settings.group_id,
            "partition.assignment.strategy": "cooperative-sticky",
            "auto.offset.reset": self.settings.events_start,
            # Offsets are stored by the app after it processed a batch (dashboard.py).
            "enable.auto.commit": True,
            "enable.auto.offset.store": False,
            "auto.commit.interval.ms": 2000,
            "queued.max.messages.kbytes": 16 * 1024,
        }

    def broadcast_manager(self) -> KafkaBroadcastManager | None:
        """The Socket.IO client manager that relays emits between replicas through Kafka."""
        if not self.settings.broadcast:
            return None
        producer = self.settings.client_config("gateway-broadcast") | {
            "linger.ms": 5,
            "compression.type": "lz4",
            "acks": 1,  # a lost dashboard update is replaced by the next one within 1 s
            "message.timeout.ms": 5000,
            "queue.buffering.max.kbytes": 64 * 1024,
        }
        return KafkaBroadcastManager(
            self.runtime,
            self.settings.topic_name(DASHBOARD_BROADCAST),
            producer,
            self.consumer_config("broadcast"),
            self.metrics,
        )

    # -- lifecycle

    def start(self, socketio: Any = None) -> Gateway:
        """Start reading; `socketio` (a flask_socketio.SocketIO) receives the dashboard's emits."""
        self._socketio = socketio
        if self.auth is None:
            log.warning("no GATEWAY_AUTH_SECRET: anyone who reaches this gateway may watch")
        if socketio is not None:
            server = socketio.server
            # python-socketio starts its client manager on the first connection; start it
            # now so that emits before any browser connects are published, not queued.
            if not server.manager_initialized:
                server.manager_initialized = True
                server.manager.initialize()
            self.dashboard.start(server.emit)
            self.wall.start(
                lambda event, data, to: server.emit(event, data, to=to, ignore_queue=True)
            )
            self.runtime.spawn(self._every, 5.0, self._announce_cameras)
        self.directory_loop.start()
        ends = self.directory_loop.submit(self.directory.assign_all)
        self.frames_loop.start()
        self.runtime.spawn(self._await_directory, ends)
        self.runtime.spawn(self._every, 1.0, self.hub.maintain)
        self.runtime.spawn(self._every, 5.0, self._check_kafka)
        self.runtime.spawn(self._measure_loop_lag)
        log.info("gateway started", extra={"async_mode": self.runtime.mode})
        return self

    def begin_shutdown(self) -> None:
        """Stop being ready and end every stream, so the server can finish its requests."""
        if self.health.stopping:
            return
        log.info("closing streams for shutdown", extra={"viewers": self.hub.viewer_count()})
        self.health.stopping = True
        self.hub.close_all()
        if self._socketio is not None:
            # Tell browsers to reconnect (to another replica) rather than wait for a timeout.
            for sid in list(self._socketio.server.manager.get_participants("/", None)):
                self._socketio.server.disconnect(sid[0], ignore_queue=True)

    def stop(self, timeout: float = 8.0) -> None:
        """Close streams, then every consumer at once (each leaves its group in parallel)."""
        if self._stopped:
            return
        self._stopped = True
        started = time.monotonic()
        self.begin_shutdown()
        loops = [self.frames_loop, self.directory_loop]
        manager = self._socketio.server.manager if self._socketio is not None else None
        if self._socketio is not None:
            loops += self.dashboard.halt()
        if isinstance(manager, KafkaBroadcastManager):
            loops.append(manager.consumer)
        for loop in loops:
            loop.request_stop()
        if isinstance(manager, KafkaBroadcastManager):
            manager.close(timeout / 3)
        deadline = started + timeout
        for loop in loops:
            loop.wait_stopped(max(0.1, deadline - time.monotonic()))
        log.info("gateway stopped", extra={"seconds": round(time.monotonic() - started, 3)})

    # -- replay

    def open_replay(self, camera: str, partition: int, from_ms: int) -> Replay | None:
        """A started replay, or None when the per-pod replay limit is reached."""
        if self._replays >= self.settings.max_replays:
            return None
        replay = Replay(
            self.runtime,
            self.consumer_config("replay"),
            self.frames_topic,
            camera,
            partition,
            from_ms,
            self.metrics,
            self.settings.max_frame_bytes,
            on_close=self._replay_closed,
        )
        self._replays += 1
        replay.start()  # closes itself if it fails
        return replay

    def _replay_closed(self) -> None:
        self._replays -= 1

    # -- background tasks (app context)

    def _announce_cameras(self) -> None:
        self._socketio.server.emit("cameras", self.directory.listing(), ignore_queue=True)

    def _on_frames(self, messages: list[Any]) -> None:
        self.metrics.dispatch_backlog.set(self.runtime.pending())
        self.hub.on_messages(messages)

    def _await_directory(self, ends: Any) -> None:
        try:
            self.directory.assigned(ends.result(60.0))
        except Exception as exc:  # noqa: BLE001 - retried by the readiness check's log
            log.error("cannot read the camera directory", extra={"error": repr(exc)})

    def _check_kafka(self) -> None:
        def probe(consumer: Consumer) -> int:
            return len(consumer.list_topics(timeout=4).brokers)

        try:
            brokers = self.directory_loop.submit(probe).result(6.0)
            self.health.kafka_ok, self.health.kafka_error = brokers > 0, None
        except Exception as exc:  # noqa: BLE001 - any failure means "not reachable"
            if self.health.kafka_ok:
                log.warning("Kafka is not reachable", extra={"error": str(exc)})
            self.health.kafka_ok, self.health.kafka_error = False, str(exc)
        self.health.checked_at = time.time()

    def _every(self, seconds: float, task: Callable[[], None]) -> None:
        while not self._stopped:
            try:
                task()
            except Exception:
                log.exception("background task failed", extra={"task": task.__name__})
            self.runtime.sleep(seconds)

    def _measure_loop_lag(self) -> None:
        while not self._stopped:
            started = time.monotonic()
            self.runtime.sleep(LOOP_TICK)
            self.metrics.loop_lag.observe(max(0.0, time.monotonic() - started - LOOP_TICK))

    def _kafka_error(self, error: KafkaError) -> None:
        self.metrics.kafka_errors.labels(code=error.name()).inc()
        if error.fatal():
            log.error("fatal Kafka error", extra={"error": error.str()})

    def _callback_failed(self, exc: BaseException) -> None:
        log.error("app-context callback failed", exc_info=exc)
