"""gunicorn, configured from the gateway's settings: one worker, eventlet or gthread.

The app is built in the worker after fork (and, in eventlet mode, after monkey
patching), and the worker's SIGTERM first ends every stream, so gunicorn's graceful
shutdown completes instead of waiting for endless MJPEG responses.
"""

from __future__ import annotations

import errno
import logging
import math
from collections.abc import Callable
from typing import Any, Protocol

from flask import Flask
from gunicorn import glogging
from gunicorn.app.base import BaseApplication
from rts_common.lifecycle import die_with_parent

from rts_gateway.bridge import Runtime
from rts_gateway.settings import GatewaySettings

log = logging.getLogger(__name__)


class Served(Protocol):
    """What the worker serves: the app, and how to end its streams and stop it."""

    app: Flask
    runtime: Runtime

    def begin_shutdown(self) -> None: ...
    def stop(self) -> None: ...


class GatewayServer(BaseApplication):  # type: ignore[misc]
    def __init__(self, settings: GatewaySettings, build: Callable[[], Served]) -> None:
        """`build()` runs in the worker, after fork: it makes and starts what is served."""
        self.settings = settings
        self._build = build
        self.gateway: Served | None = None
        super().__init__()

    def load_config(self) -> None:
        s = self.settings
        config: dict[str, Any] = {
            "bind": [f"{s.host}:{s.port}"],
            "workers": 1,  # scale by pods: one process owns its Kafka reads and sockets
            "worker_class": "eventlet" if s.async_mode == "eventlet" else "gthread",
            "threads": s.threads,
            "worker_connections": s.worker_connections,
            "graceful_timeout": math.ceil(s.graceful_timeout),
            "timeout": 30,
            "keepalive": 5,
            "proc_name": "gateway",
            "accesslog": "-" if s.access_log else None,
            # gunicorn's default line, with the path instead of the whole request line: no
            # query string (where a login token could be) reaches the log.
            "access_log_format": '%(h)s %(l)s %(u)s %(t)s "%(m)s %(U)s %(H)s" %(s)s %(b)s '
            '"%(f)s" "%(a)s"',
            # X-Forwarded-Proto (a request that reached the ingress over TLS: Secure
            # cookies) is believed from these proxies only, never from anyone by default.
            "forwarded_allow_ips": s.trusted_proxies,
            "logger_class": PropagatingLogger,
            # gunicorn 25's control socket lives in $HOME: read-only in our containers,
            # and shared by every gateway on a machine. Nothing here uses it.
            "control_socket_disable": True,
            # A master killed outright (SIGKILL, OOM) must not leave its worker running,
            # holding the port and its consumer group's partitions.
            "post_fork": lambda _server, _worker: die_with_parent(),
            "post_worker_init": self._post_worker_init,
            "worker_int": self._worker_exiting,
            "worker_exit": self._worker_exit,
        }
        for key, value in config.items():
            self.cfg.set(key, value)

    def load(self) -> Any:
        self.gateway = self._build()
        return ErrorsThroughLogging(self.gateway.app)

    def _post_worker_init(self, worker: Any) -> None:
        gateway = self.gateway
        assert gateway is not None

        # gunicorn's SIGTERM handler only flips `alive`; watch it so open streams end
        # now rather than at the graceful timeout.
        def watch() -> None:
            while worker.alive:
                gateway.runtime.sleep(0.2)
            gateway.begin_shutdown()

        gateway.runtime.spawn(watch)

    def _worker_exiting(self, worker: Any) -> None:
        if self.gateway is not None:
            self.gateway.begin_shutdown()

    def _worker_exit(self, server: Any, worker: Any) -> None:
        if self.gateway is not None:
            self.gateway.stop()


class PropagatingLogger(glogging.Logger):  # type: ignore[misc]
    """gunicorn's loggers without gunicorn's handlers: records go to the root logger,
    which the entry point configured, so every line of the process has one format."""

    def setup(self, cfg: Any) -> None:
        for logger in (self.error_log, self.access_log):
            logger.handlers.clear()
            logger.propagate = True
        self.error_log.setLevel(logging.INFO)
        self.access_log.setLevel(logging.INFO)


class ErrorsThroughLogging:
    """WSGI middleware: what the server's libraries write to `wsgi.errors` (gunicorn hands
    them stderr itself) goes through logging, in the process's one format.

    eventlet's WebSocket writes "socket shutdown error: [Errno 9] Bad file descriptor"
    there when it closes a connection whose client already went (a browser tab closed,
    a proxy that dropped it): nothing to act on, so it is a debug line."""

    def __init__(self, app: Any) -> None:
        self._app = app
        self._stream = _LogStream(logging.getLogger("rts_gateway.wsgi"))

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        environ["wsgi.errors"] = self._stream
        return self._app(environ, start_response)


class _LogStream:
    """A write-only text stream whose lines become log records."""

    def __init__(self, log: logging.Logger) -> None:
        self._log = log

    def write(self, text: str) -> int:
        for line in text.splitlines():
            if not line.strip():
                continue
            gone = "socket shutdown error" in line and f"[Errno {errno.EBADF}]" in line
            self._log.log(logging.DEBUG if gone else logging.WARNING, line.strip())
        return len(text)

    def writelines(self, lines: list[str]) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        pass
