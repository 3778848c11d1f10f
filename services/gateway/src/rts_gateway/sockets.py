"""The process's Socket.IO server as the features see it: emits, rooms, connected clients.

What the server emits (payloads are JSON unless noted):
- `new_event`: a playback event with the baseline's fields (and the additions);
- `qoe`: one partition's aggregate, once a second per partition (see feed/qoe.py);
  `qoe_released`: a partition's aggregate moved to another replica;
- `detection`: a motion or face detection of a camera;
- `cameras`: the camera list (on connect and every few seconds);
- `wall_frame`: a camera-wall thumbnail (binary `jpeg`), to clients in the wall room;
- `status`: `{"kafka": true|false}`, whether this replica reaches Kafka (on connect and
  when it changes).
What a client may send: `wall` with `{"on": true|false}` to start or stop tiles.

Connections are authorised once, when they connect; features hook into connect and
disconnect and register the events they answer, and never see Flask-SocketIO itself.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Protocol

from flask import request
from flask_socketio import SocketIO

from rts_gateway.metrics import GatewayMetrics

log = logging.getLogger(__name__)

# What a client sent with an event (decoded JSON), and what an event handler acknowledges.
Payload = object
Handler = Callable[[str, Payload], Payload]
Hook = Callable[[str], None]


class Emit(Protocol):
    def __call__(
        self, event: str, data: Payload, *, to: str | None = None, local: bool = False
    ) -> None:
        """Send to every dashboard (or room `to`) on every replica; `local`: this one only."""


class SocketServer:
    def __init__(
        self, socketio: SocketIO, metrics: GatewayMetrics, authorize: Callable[[], None]
    ) -> None:
        """`authorize()` raises ConnectionRefusedError for a connection it refuses; it runs
        in the connection's request context (cookies, headers)."""
        self._socketio = socketio
        self._server = socketio.server
        self._clients_gauge = metrics.socketio_clients
        self._authorize = authorize
        self._clients: set[str] = set()
        self._on_connect: list[Hook] = []
        self._on_disconnect: list[Hook] = []
        socketio.on("connect")(self._connected)
        socketio.on("disconnect")(self._disconnected)

    @property
    def clients(self) -> int:
        return len(self._clients)

    def emit(
        self, event: str, data: Payload, *, to: str | None = None, local: bool = False
    ) -> None:
        self._server.emit(event, data, to=to, ignore_queue=local)

    def on(self, event: str, handler: Handler) -> None:
        """Answer `event` with `handler(sid, payload)`; what it returns is the ack."""

        def answer(payload: Payload = None) -> Payload:
            return handler(_sid(), payload)

        self._socketio.on(event)(answer)

    def on_connect(self, hook: Hook) -> None:
        self._on_connect.append(hook)

    def on_disconnect(self, hook: Hook) -> None:
        self._on_disconnect.append(hook)

    def enter_room(self, sid: str, room: str) -> None:
        self._server.enter_room(sid, room)

    def leave_room(self, sid: str, room: str) -> None:
        self._server.leave_room(sid, room)

    def disconnect_all(self) -> None:
        """Tell this replica's browsers to reconnect (to another replica) now."""
        for sid in list(self._clients):
            self._server.disconnect(sid, ignore_queue=True)

    def _connected(self, _auth: Payload = None) -> None:
        self._authorize()
        sid = _sid()
        self._clients.add(sid)
        self._clients_gauge.set(len(self._clients))
        for hook in self._on_connect:
            hook(sid)

    def _disconnected(self, *_reason: Payload) -> None:
        sid = _sid()
        if sid not in self._clients:
            return  # refused at connect: nothing was counted or started for it
        self._clients.discard(sid)
        self._clients_gauge.set(len(self._clients))
        for hook in self._on_disconnect:
            hook(sid)


def _sid() -> str:
    # Flask-SocketIO puts the connection's id on the request of each event's context.
    sid: str = request.sid  # type: ignore[attr-defined]
    return sid
