"""The process's Socket.IO server as the features see it: emits, rooms, connected clients.

What the server emits (payloads are JSON unless noted):
- `new_event`: a playback event with the baseline's fields (and the additions);
- `qoe`: one partition's aggregate, once a second per partition (see feed/qoe.py);
  `qoe_released`: a partition's aggregate moved to another replica;
- `detection`: a motion or face detection of a camera;
- `cameras`: the camera list (on connect and every few seconds);
- `wall_frame`: a camera-wall thumbnail (binary `jpeg`), to clients in the wall room;
- `status`: `{"kafka": true|false}`, whether this replica reaches Kafka (on connect and
  when it changes);
- `batch`: `{"events": [...], "qoe": [...], "detections": [...]}` every 250 ms, instead of
  `new_event`, `qoe` and (for clients that see every camera) `detection` one by one, to
  clients that asked for batches (feed/playback.py).
What a client may send: `wall` with `{"on": true|false}` to start or stop tiles;
`options` with `{"batch": true}` to get `batch` instead of `new_event` and `detection`.

Connections are authorised when they connect, and end when their session is revoked or
expires; what concerns one camera goes only to clients whose sign-in covers it (a room
per camera, and one for clients that see every camera). Features hook into connect and
disconnect and register the events they answer, and never see Flask-SocketIO itself.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Protocol

from flask import request
from flask_socketio import SocketIO
from rts_common.signin import Grant

from rts_gateway.grants import Lease, Leases
from rts_gateway.metrics import GatewayMetrics

log = logging.getLogger(__name__)

# What a client sent with an event (decoded JSON), and what an event handler acknowledges.
Payload = object
Handler = Callable[[str, Payload], Payload]
Hook = Callable[[str], None]

ALL_CAMERAS_ROOM = "cameras:*"
# A refused connection's Engine.IO session is closed this long after the refusal, so the
# client receives the reason first.
REFUSED_CLOSE_DELAY = 1.0


def camera_room(camera: str) -> str:
    return f"camera:{camera}"


class Emit(Protocol):
    def __call__(
        self, event: str, data: Payload, *, to: str | list[str] | None = None, local: bool = False
    ) -> None:
        """Send to every dashboard (or the rooms `to`) on every replica; `local`: this
        one only."""


class SocketServer:
    def __init__(
        self,
        socketio: SocketIO,
        metrics: GatewayMetrics,
        authorize: Callable[[], Grant | None],
        leases: Leases,
    ) -> None:
        """`authorize()` returns the connection's grant (None: sign-in is off) or raises
        ConnectionRefusedError; it runs in the connection's request context."""
        self._socketio = socketio
        self._server = socketio.server
        self._clients_gauge = metrics.socketio_clients
        self._authorize = authorize
        self._leases = leases
        self._clients: dict[str, Grant | None] = {}
        self._held: dict[str, Lease] = {}
        self._on_connect: list[Hook] = []
        self._on_disconnect: list[Hook] = []
        socketio.on("connect")(self._connected)
        socketio.on("disconnect")(self._disconnected)

    @property
    def clients(self) -> int:
        return len(self._clients)

    def grant(self, sid: str) -> Grant | None:
        return self._clients.get(sid)

    def sees_every_camera(self, sid: str) -> bool:
        grant = self._clients.get(sid)
        return grant is None or grant.cameras is None

    def scoped(self) -> dict[str, frozenset[str]]:
        """Connected clients of this replica whose sign-in covers only some cameras."""
        return {
            sid: grant.cameras
            for sid, grant in list(self._clients.items())
            if grant is not None and grant.cameras is not None
        }

    def emit(
        self, event: str, data: Payload, *, to: str | list[str] | None = None, local: bool = False
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

    def disconnect(self, sid: str) -> None:
        self._server.disconnect(sid, ignore_queue=True)

    def disconnect_all(self) -> None:
        """Tell this replica's browsers to reconnect (to another replica) now."""
        for sid in list(self._clients):
            self.disconnect(sid)

    def _connected(self, _auth: Payload = None) -> None:
        sid = _sid()
        try:
            grant = self._authorize()
        except ConnectionRefusedError:
            # The Engine.IO session under a refused connection would stay open: close it.
            eio_sid = self._server.manager.eio_sid_from_sid(sid, "/")
            self._server.start_background_task(self._close_engine, eio_sid)
            raise
        self._clients[sid] = grant
        lease = self._leases.hold(grant, "socket", lambda: self.disconnect(sid))
        if lease is not None:
            self._held[sid] = lease
        if grant is None or grant.cameras is None:
            self.enter_room(sid, ALL_CAMERAS_ROOM)
        else:
            for camera in grant.cameras:
                self.enter_room(sid, camera_room(camera))
        self._clients_gauge.set(len(self._clients))
        for hook in self._on_connect:
            hook(sid)

    def _close_engine(self, eio_sid: str | None) -> None:
        self._server.sleep(REFUSED_CLOSE_DELAY)
        if eio_sid is not None:
            self._server.eio.disconnect(eio_sid)

    def _disconnected(self, *_reason: Payload) -> None:
        sid = _sid()
        if sid not in self._clients:
            return  # refused at connect: nothing was counted or started for it
        del self._clients[sid]
        lease = self._held.pop(sid, None)
        if lease is not None:
            lease.release()
        self._clients_gauge.set(len(self._clients))
        for hook in self._on_disconnect:
            hook(sid)


def _sid() -> str:
    # Flask-SocketIO puts the connection's id on the request of each event's context.
    sid: str = request.sid  # type: ignore[attr-defined]
    return sid
