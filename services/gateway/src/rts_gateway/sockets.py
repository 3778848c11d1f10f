"""Socket.IO event handlers: connections, the camera wall room, the camera list.

What the server emits (payloads are JSON unless noted):
- `new_event`: a playback event with the baseline's fields (and the additions);
- `qoe`: one partition's aggregate, once a second per partition (see qoe.py);
  `qoe_released`: a partition's aggregate moved to another replica;
- `detection`: a motion or face detection of a camera;
- `cameras`: the camera list (on connect and every few seconds);
- `wall_frame`: a camera-wall thumbnail (binary `jpeg`), to clients in the wall room.
What a client may send: `wall` with `{"on": true|false}` to start or stop tiles.
"""

from __future__ import annotations

from typing import Any

from flask import request
from flask_socketio import SocketIO, emit, join_room, leave_room

from rts_gateway.access import session_token
from rts_gateway.auth import AuthError
from rts_gateway.service import Gateway
from rts_gateway.wall import ROOM


def register(socketio: SocketIO, gateway: Gateway) -> None:
    clients = gateway.metrics.socketio_clients
    connected: set[str] = set()

    @socketio.on("connect")
    def connect(_auth: Any = None) -> None:
        if gateway.auth is not None:
            try:
                gateway.auth.check_session(session_token())
            except AuthError as error:
                gateway.metrics.auth_failures.labels(reason=error.reason).inc()
                raise ConnectionRefusedError(str(error)) from None
        connected.add(request.sid)  # type: ignore[attr-defined]
        clients.inc()
        emit("cameras", gateway.directory.listing())

    @socketio.on("disconnect")
    def disconnect(*_reason: Any) -> None:
        # Only connections that passed connect() were counted.
        if request.sid in connected:  # type: ignore[attr-defined]
            connected.discard(request.sid)  # type: ignore[attr-defined]
            clients.dec()
        gateway.wall.leave(request.sid)  # type: ignore[attr-defined]

    @socketio.on("wall")
    def wall(options: Any = None) -> dict[str, Any]:
        sid = request.sid  # type: ignore[attr-defined]
        on = not isinstance(options, dict) or bool(options.get("on", True))
        if on:
            join_room(ROOM)
            gateway.wall.join(sid)
        else:
            leave_room(ROOM)
            gateway.wall.leave(sid)
        return {"wall": on, "cameras": gateway.wall.watching}
