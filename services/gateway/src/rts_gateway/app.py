"""The Flask application and its Socket.IO server, built from the parts passed in.

`create_app` reads no environment and starts nothing: the composition root (service.py)
or a test builds the features and hands them here.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from flask import Flask, render_template
from flask_socketio import SocketIO
from prometheus_client import CollectorRegistry
from socketio import PubSubManager

from rts_gateway.access import Access
from rts_gateway.access.routes import access_routes, protect
from rts_gateway.health import Health, ops_routes
from rts_gateway.responses import register_error_handlers
from rts_gateway.settings import GatewaySettings
from rts_gateway.video import Video
from rts_gateway.video.routes import video_routes


def create_app(
    settings: GatewaySettings,
    *,
    access: Access,
    video: Video,
    health: Health,
    registry: CollectorRegistry,
    client_manager: PubSubManager | None = None,
) -> tuple[Flask, SocketIO]:
    """The Flask app and its Socket.IO server; `client_manager` relays emits between
    replicas (None: this process's clients only)."""
    app = Flask("rts_gateway")
    # A camera id with an encoded "/" would otherwise be answered with a redirect to a
    # path with the slashes merged: an unknown camera is a 404, whatever its id.
    app.url_map.merge_slashes = False
    version = _asset_version(Path(app.static_folder or ""))
    app.register_blueprint(ops_routes(health, registry))
    app.register_blueprint(video_routes(video))
    app.register_blueprint(access_routes(access))
    protect(app, access)
    register_error_handlers(app)

    @app.get("/")
    def index() -> str:
        return render_template("index.html", version=version)

    socketio = SocketIO(
        app,
        async_mode=settings.async_mode,
        client_manager=client_manager,
        cors_allowed_origins=_origins(settings.allowed_origins),
        # Browsers on a slow link must not be dropped while a wall frame is in flight.
        ping_timeout=20,
        max_http_buffer_size=1_000_000,
    )
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
