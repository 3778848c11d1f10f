"""The Flask application: routes and Socket.IO, built from parts passed in.

`create_app` reads no environment and starts nothing: the server (or a test) builds a
`Gateway`, starts it, and hands it here.
"""

from __future__ import annotations

from typing import Any

from flask import Flask, Response
from flask_socketio import SocketIO

from rts_gateway import sockets
from rts_gateway.routes import json_error, ops_routes, video_routes
from rts_gateway.service import Gateway

INDEX = """<!doctype html>
<html><head><meta charset="utf-8"><title>Cameras</title>
<style>body{font-family:sans-serif;background:#111;color:#eee}img{width:480px;margin:4px}</style>
</head><body><h2>Cameras</h2><div id="wall"></div>
<script>
fetch("/api/cameras").then(r => r.json()).then(({cameras}) => {
  const wall = document.getElementById("wall");
  for (const c of cameras) {
    const a = document.createElement("a"); a.href = c.stream;
    const img = document.createElement("img"); img.src = c.stream + "?fps=5"; img.alt = c.camera;
    a.append(img); wall.append(a);
  }
});
</script></body></html>
"""


def create_app(gateway: Gateway, client_manager: Any = None) -> tuple[Flask, SocketIO]:
    """The Flask app and its Socket.IO server; `client_manager` relays emits between
    replicas (None: this process's clients only, as in unit tests)."""
    app = Flask("rts_gateway")
    app.config["JSON_SORT_KEYS"] = False
    app.register_blueprint(ops_routes(gateway))
    app.register_blueprint(video_routes(gateway))

    @app.get("/")
    def index() -> Response:
        return Response(INDEX, content_type="text/html; charset=utf-8")

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
        # Browsers on a slow link must not be dropped while a wall frame is in flight.
        ping_timeout=20,
        max_http_buffer_size=1_000_000,
    )
    sockets.register(socketio, gateway)
    return app, socketio
