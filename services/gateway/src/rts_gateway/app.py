"""The Flask application and its Socket.IO server, built from the parts passed in.

`create_app` reads no environment and starts nothing: the composition root (service.py)
or a test builds the features and hands them here. Probes and metrics are not served
here but on the ops port (service.py), which no ingress routes.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from flask import Flask, render_template
from flask_socketio import SocketIO
from socketio import Manager

from rts_gateway.access import Access
from rts_gateway.access.routes import access_routes, guard_handshakes, protect
from rts_gateway.fanout import decline_compression
from rts_gateway.replica import ReplicaHeader
from rts_gateway.responses import register_error_handlers, register_security_headers
from rts_gateway.settings import GatewaySettings
from rts_gateway.video import Video

SOCKETIO_PATH = "socket.io"
# The pages post nothing bigger than a login token.
MAX_REQUEST_BYTES = 16 * 1024


def create_app(
    settings: GatewaySettings,
    *,
    access: Access,
    video: Video,
    client_manager: Manager | None = None,
) -> tuple[Flask, SocketIO]:
    """The Flask app and its Socket.IO server; `client_manager` delivers emits to the
    clients (and relays them between replicas; None: python-socketio's own, this
    process's clients only)."""
    app = Flask("rts_gateway")
    app.config["MAX_CONTENT_LENGTH"] = MAX_REQUEST_BYTES
    # A camera id with an encoded "/" would otherwise be answered with a redirect to a
    # path with the slashes merged: an unknown camera is a 404, whatever its id.
    app.url_map.merge_slashes = False
    version = _asset_version(Path(app.static_folder or ""))
    origins = _origins(settings.allowed_origins)
    app.register_blueprint(video.routes())
    app.register_blueprint(access_routes(access, origins or ()))
    protect(app, access)
    register_error_handlers(app, on_too_large=lambda: access.leases.hit("message_size"))
    register_security_headers(app)

    @app.get("/")
    def index() -> str:
        return render_template("index.html", version=version, signed_in=access.auth is not None)

    socketio = SocketIO(
        app,
        async_mode=settings.async_mode,
        client_manager=client_manager,
        cors_allowed_origins=origins,
        path=SOCKETIO_PATH,
        # Browsers on a slow link must not be dropped while a wall frame is in flight.
        ping_timeout=20,
        max_http_buffer_size=settings.socketio_max_message_bytes,
    )
    # In front of Socket.IO's own middleware: the handshake is checked before Engine.IO
    # opens a session for it.
    app.wsgi_app = guard_handshakes(  # type: ignore[method-assign,assignment]
        app.wsgi_app,
        access,
        path=SOCKETIO_PATH,
        max_message_bytes=settings.socketio_max_message_bytes,
    )
    if not settings.socketio_compression:
        app.wsgi_app = decline_compression(app.wsgi_app, path=SOCKETIO_PATH)  # type: ignore[method-assign,assignment]
    # Outermost, so every response carries it, the handshake guard's refusals too.
    app.wsgi_app = ReplicaHeader(app.wsgi_app, settings.replica_name)  # type: ignore[method-assign]
    return app, socketio


def _asset_version(static: Path) -> str:
    """A content hash for the bundle's URL, so browsers never run a stale dashboard."""
    digest = hashlib.sha256()
    for name in ("dashboard.js", "dashboard.css"):
        path = static / name
        if path.is_file():
            digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


def _origins(setting: str) -> list[str] | None:
    """Allowed Socket.IO origins; None is python-engineio's "this server's own origin"."""
    origins = [o.strip().rstrip("/") for o in setting.split(",") if o.strip()]
    return origins or None
