"""The Flask application: routes and Socket.IO, built from parts passed in.

`create_app` reads no environment and starts nothing: the server (or a test) builds a
`Gateway`, starts it, and hands it here.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from flask import Flask, Response, render_template
from flask_socketio import SocketIO

from rts_gateway import sockets
from rts_gateway.access import access_routes, protect
from rts_gateway.routes import json_error, ops_routes, video_routes
from rts_gateway.service import Gateway


def create_app(gateway: Gateway, client_manager: Any = None) -> tuple[Flask, SocketIO]:
    """The Flask app and its Socket.IO server; `client_manager` relays emits between
    replicas (None: this process's clients only, as in unit tests)."""
    app = Flask("rts_gateway")
    version = _asset_version(Path(app.static_folder or ""))
    app.register_blueprint(ops_routes(gateway))
    app.register_blueprint(video_routes(gateway))
    app.register_blueprint(access_routes(gateway))
    protect(app, gateway)

    @app.get("/")
    def index() -> str:
        return render_template("index.html", version=version)

    @app.errorhandler(404)
    def not_found(_error: Exception) -> Response:
        return json_error(404, "not found")

    @app.errorhandler(405)
    def not_allowed(_error: Exception) -> Response:
        return json_error(405, "method not allowed")

    socketio = SocketIO(
        app,
        async_mode=gateway.settings.async_mode,
        client_manager=client_manager,
        cors_allowed_origins=_origins(gateway.settings.allowed_origins),
        # Browsers on a slow link must not be dropped while a wall frame is in flight.
        ping_timeout=20,
        max_http_buffer_size=1_000_000,
    )
    sockets.register(socketio, gateway)
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
