"""The Socket.IO fan-out: each message framed once, written to every dashboard with no
green thread per client, and a slow dashboard costing the others nothing (eventlet mode).

What python-socketio and engine.io do on their own, per message and per client:
python-socketio encodes a room's message once, then engine.io puts it on the client's
queue, that client's writer green thread wakes (a hub timer for the wake, another for its
next wait), eventlet's WebSocket frames it (and compresses it with the client's own zlib
stream when the browser offered permessage-deflate) and writes it with a system call of
its own. A client that does not read keeps everything queued for it, without bound.

Here, for the WebSocket clients of an eventlet worker:
- the manager (`FanoutManager.emit`) frames a message once and appends the same bytes to
  the `Outbox` of each recipient;
- once per turn of the event loop, `Fanout.flush` writes each outbox that has something
  with one non-blocking `sendmsg`: every message of that turn in one system call;
- what a socket cannot take yet waits in its outbox, written by a green thread that only
  exists while that client is behind. Past `backlog_bytes` the messages still waiting
  are dropped (counted in `gateway_socketio_messages_dropped_total`): the client sees a
  gap and then the present (the next `qoe` is complete in itself), never seconds of
  backlog, and the others never wait for it;
- every byte of the connection goes through its outbox (engine.io's own packets, pongs,
  the closing frame), so frames never interleave and keep their order.

Compression: a browser's permessage-deflate offer is declined unless
`GATEWAY_SOCKETIO_COMPRESSION` asks for it (`decline_compression`, a WSGI middleware in
front of Socket.IO). A client that negotiated it takes the libraries' own path, its
messages compressed for it alone.

Where this leaves python-socketio's public API, and why (checked against the pinned
versions by tests/unit/gateway/test_fanout.py, which fails when they move):
- engine.io has no way to plug in a WebSocket class: the server's `_async["websocket"]`
  entry is replaced, on this server only, by `FanoutWebSocketWSGI` (eventlet's
  WebSocketWSGI as engine.io's eventlet driver wraps it), which hands engine.io a
  WebSocket whose one write path (`RFC6455WebSocket._send`) is the outbox;
- the outbox is found by engine.io's session id, read from the handler engine.io passes
  (a method of its `Socket`);
- a client's messages start taking the direct path once engine.io's writer has sent the
  Socket.IO CONNECT acknowledgement (`40`) through that WebSocket: everything engine.io
  queued for it before is written first.
Threading mode, long-polling clients and compressing clients take the libraries' path.
"""

from __future__ import annotations

import collections
import errno
import logging
import socket
import struct
import time
from collections.abc import Callable, Iterable
from itertools import islice
from typing import Any

import socketio
from engineio import packet as eio_packet
from socketio import packet as sio_packet

from rts_gateway.metrics import GatewayMetrics

log = logging.getLogger(__name__)

# What a frame carries: a text or binary WebSocket frame, unmasked (server to client).
_TEXT, _BINARY = 0x81, 0x82
# At most this many messages in one sendmsg (Linux takes up to 1024 buffers).
_BUFFERS = 256
# A client that ended its connection: nothing more to write.
_GONE = (errno.EPIPE, errno.ECONNRESET, errno.EBADF, errno.ENOTCONN, errno.ESHUTDOWN)

Environ = dict[str, Any]
StartResponse = Callable[..., Any]
WSGIApp = Callable[[Environ, StartResponse], Iterable[bytes]]


def frame(payload: str | bytes) -> bytes:
    """One unmasked WebSocket frame: text for a str, binary for bytes."""
    if isinstance(payload, str):
        data, first = payload.encode(), _TEXT
    else:
        data, first = bytes(payload), _BINARY
    n = len(data)
    if n < 126:
        header = bytes((first, n))
    elif n < 65536:
        header = struct.pack("!BBH", first, 126, n)
    else:
        header = struct.pack("!BBQ", first, 127, n)
    return header + data


def decline_compression(app: WSGIApp, *, path: str) -> WSGIApp:
    """WSGI middleware: WebSocket upgrades under `path` reach Socket.IO without their
    `Sec-WebSocket-Extensions` offer, so no connection negotiates permessage-deflate (a
    server may decline an extension; the browser then sends and receives plain frames)."""
    prefix = "/" + path.strip("/")

    def middleware(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        if "HTTP_SEC_WEBSOCKET_EXTENSIONS" in environ and str(
            environ.get("PATH_INFO", "")
        ).startswith(prefix):
            del environ["HTTP_SEC_WEBSOCKET_EXTENSIONS"]
        return app(environ, start_response)

    return middleware


class Outbox:
    """What one WebSocket connection has yet to write, in order. Runs on the hub.

    A unit is one whole message (its frames together) or one frame engine.io or eventlet
    wrote; only the fan-out's messages may be dropped, never a frame the protocol needs
    (a ping, an acknowledgement, the closing frame) nor the part of a message already on
    its way."""

    __slots__ = (
        "_droppable",
        "_fanout",
        "_offset",
        "_scheduled",
        "_sock",
        "_units",
        "_writer",
        "closed",
        "queued_bytes",
        "ready",
    )

    def __init__(self, fanout: Fanout, sock: socket.socket) -> None:
        self._fanout = fanout
        self._sock = sock  # the real (non-blocking) socket under eventlet's green one
        self._units: collections.deque[bytes] = collections.deque()
        self._droppable: collections.deque[bool] = collections.deque()
        self._offset = 0  # bytes of the first unit already written
        self.queued_bytes = 0
        # Messages may come straight here once the Socket.IO connection is acknowledged.
        self.ready = False
        self.closed = False
        self._scheduled = False  # waiting for this turn's flush
        self._writer: Any = None  # the green thread writing while the client is behind

    @property
    def behind(self) -> bool:
        """Its socket took less than it was given: a writer waits for it to take more."""
        return self._writer is not None

    def push(self, unit: bytes) -> None:
        """A fan-out message: written at the end of this turn, dropped with the rest of
        the queue if the client is behind by more than the fan-out's bound."""
        if self.closed:
            return
        if self.queued_bytes > self._fanout.backlog_bytes:
            self._drop_waiting()
        self._units.append(unit)
        self._droppable.append(True)
        self.queued_bytes += len(unit)
        if not self._scheduled and self._writer is None:
            self._scheduled = True
            self._fanout.schedule(self)

    def write(self, unit: bytes) -> None:
        """A frame of the protocol itself (engine.io's packets, pongs, the closing frame):
        never dropped, written now if the socket takes it."""
        if self.closed:
            return
        self._units.append(unit)
        self._droppable.append(False)
        self.queued_bytes += len(unit)
        if self._writer is None:
            self.write_now()

    def write_now(self) -> None:
        """Write what the socket takes without waiting; a writer takes the rest."""
        self._scheduled = False
        self._write_some()
        if self._units and not self.closed and self._writer is None:
            self._writer = self._fanout.spawn_writer(self)

    def _write_some(self) -> None:
        units, sock = self._units, self._sock
        while units and not self.closed:
            if self._offset:
                first = memoryview(units[0])[self._offset :]
                buffers: list[bytes | memoryview] = [first, *islice(units, 1, _BUFFERS)]
            else:
                buffers = list(islice(units, _BUFFERS))
            try:
                sent = sock.sendmsg(buffers)
            except BlockingIOError:
                return
            except OSError as error:
                if error.errno not in _GONE:
                    log.info("socket.io client write failed", extra={"error": str(error)})
                self._gone()
                return
            self.queued_bytes -= sent
            offset = self._offset + sent
            while units and offset >= len(units[0]):
                offset -= len(units.popleft())
                self._droppable.popleft()
                self._fanout.units_written += 1
            self._offset = offset

    def drain(self, wait_writable: Callable[[socket.socket], None]) -> None:
        """The writer green thread: wait until the socket takes more and write, until
        nothing is left or the client is gone."""
        try:
            while self._units and not self.closed:
                wait_writable(self._sock)
                self._write_some()
        except OSError:
            self._gone()
        finally:
            self._writer = None

    def _drop_waiting(self) -> None:
        """Forget the messages not yet started (the client is behind: they are stale)."""
        kept_units: collections.deque[bytes] = collections.deque()
        kept_flags: collections.deque[bool] = collections.deque()
        dropped = 0
        for i, (unit, droppable) in enumerate(zip(self._units, self._droppable, strict=True)):
            if droppable and not (i == 0 and self._offset):
                dropped += 1
                self.queued_bytes -= len(unit)
            else:
                kept_units.append(unit)
                kept_flags.append(droppable)
        self._units, self._droppable = kept_units, kept_flags
        self._fanout.units_dropped += dropped

    def _gone(self) -> None:
        self.closed = True
        self._units.clear()
        self._droppable.clear()
        self.queued_bytes = self._offset = 0

    def finish(self) -> None:
        """The connection ends: write what the socket takes now, keep nothing."""
        if not self.closed and self._writer is None:
            self._write_some()
        writer, self._writer = self._writer, None
        self._gone()
        if writer is not None:
            writer.kill()


class Fanout:
    """The outboxes of this worker's WebSocket clients, by engine.io session id, and the
    once-a-turn flush that writes them."""

    def __init__(self, metrics: GatewayMetrics, *, backlog_bytes: int, send_buffer: int) -> None:
        import eventlet
        from eventlet import hubs

        self._eventlet = eventlet
        self._hubs = hubs
        self._metrics = metrics
        self.backlog_bytes = backlog_bytes
        self.send_buffer = send_buffer
        self.outboxes: dict[str, Outbox] = {}
        self._due: list[Outbox] = []
        self._flush_scheduled = False
        self._gauges_due = 0.0
        # Counted on the hub as plain ints, published to Prometheus by the next emit.
        self.units_written = 0
        self.units_dropped = 0
        self.messages_framed = 0

    # -- the manager's side

    def schedule(self, outbox: Outbox) -> None:
        self._due.append(outbox)
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self._hubs.get_hub().schedule_call_global(0, self.flush)

    def flush(self) -> None:
        self._flush_scheduled = False
        due, self._due = self._due, []
        for outbox in due:
            if outbox._scheduled:
                outbox.write_now()

    def publish_counts(self) -> None:
        """Counts to Prometheus (from a green thread: never from the hub's own, where a
        metric's lock must not be waited for); the gauges once a second."""
        m = self._metrics
        now = time.monotonic()
        if now >= self._gauges_due:
            self._gauges_due = now + 1.0
            outboxes = list(self.outboxes.values())
            m.socketio_clients_behind.set(sum(o.behind for o in outboxes))
            m.socketio_backlog_bytes.set(sum(o.queued_bytes for o in outboxes))
        if self.units_written:
            m.socketio_messages_written.inc(self.units_written)
            self.units_written = 0
        if self.units_dropped:
            m.socketio_messages_dropped.inc(self.units_dropped)
            self.units_dropped = 0
        if self.messages_framed:
            m.socketio_messages_framed.inc(self.messages_framed)
            self.messages_framed = 0

    # -- slow clients

    def spawn_writer(self, outbox: Outbox) -> Any:
        return self._eventlet.spawn(outbox.drain, self._wait_writable)

    def _wait_writable(self, sock: socket.socket) -> None:
        self._hubs.trampoline(sock.fileno(), write=True)

    # -- connections

    def open(self, sid: str, green_socket: Any) -> Outbox:
        raw: socket.socket = green_socket.fd
        if self.send_buffer:
            # Whatever the kernel holds is late for the client: keep it to a few messages.
            raw.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, self.send_buffer)
        outbox = Outbox(self, raw)
        self.outboxes[sid] = outbox
        return outbox

    def close(self, sid: str, outbox: Outbox) -> None:
        if self.outboxes.get(sid) is outbox:
            del self.outboxes[sid]
        outbox.finish()


class FanoutManager(socketio.Manager):  # type: ignore[misc]
    """python-socketio's in-process client manager whose emits take the fan-out to the
    clients that have an outbox (and the libraries' path to the others)."""

    fanout: Fanout | None = None

    def emit(
        self,
        event: str,
        data: Any,
        namespace: str,
        room: Any = None,
        skip_sid: Any = None,
        callback: Any = None,
        to: Any = None,
        **kwargs: Any,
    ) -> None:
        fanout = self.fanout
        if fanout is not None:
            fanout.publish_counts()
        if fanout is None or callback is not None:
            super().emit(
                event,
                data,
                namespace,
                room=room,
                skip_sid=skip_sid,
                callback=callback,
                to=to,
                **kwargs,
            )
            return
        room = to or room
        if namespace not in self.rooms:
            return
        # As Manager.emit: a tuple is several arguments, anything else one.
        args = list(data) if isinstance(data, tuple) else [] if data is None else [data]
        skip = set(skip_sid) if isinstance(skip_sid, list) else {skip_sid}
        make_packet = self.server.packet_class
        try:
            # Text, as nearly every message is: python-socketio would otherwise walk the
            # whole payload looking for bytes first. Bytes fail the JSON encoding.
            encoded = make_packet(
                sio_packet.EVENT, namespace=namespace, data=[event, *args], binary=False
            ).encode()
        except TypeError:
            encoded = make_packet(
                sio_packet.EVENT, namespace=namespace, data=[event, *args]
            ).encode()
        parts = encoded if isinstance(encoded, list) else [encoded]
        eio_packets = [eio_packet.Packet(eio_packet.MESSAGE, p) for p in parts]
        unit = b""
        outboxes = fanout.outboxes
        send_packet = self.server.eio.send_packet
        for sid, eio_sid in self.get_participants(namespace, room):
            if sid in skip:
                continue
            outbox = outboxes.get(eio_sid)
            if outbox is not None and outbox.ready:
                if not unit:
                    unit = b"".join(frame(p.encode()) for p in eio_packets)
                    fanout.messages_framed += 1
                outbox.push(unit)
            else:
                for p in eio_packets:
                    send_packet(eio_sid, p)


def install(server: socketio.Server, manager: FanoutManager, fanout: Fanout) -> None:
    """Take this Socket.IO server's WebSocket clients onto the fan-out (eventlet mode)."""
    from engineio.async_drivers import eventlet as eio_eventlet
    from eventlet import websocket as eventlet_websocket

    class FanoutWebSocket(eventlet_websocket.RFC6455WebSocket):  # type: ignore[misc]
        """eventlet's WebSocket whose every write goes through the connection's outbox."""

        outbox: Outbox | None = None

        def _send(self, frame_bytes: bytes) -> None:
            if self.outbox is None:
                super()._send(frame_bytes)
            else:
                self.outbox.write(frame_bytes)

        def send(self, message: str | bytes, **kw: Any) -> None:
            super().send(message, **kw)
            outbox = self.outbox
            # engine.io's writer sent the Socket.IO CONNECT acknowledgement: what it
            # queued before is written, the fan-out may write here from now on.
            if outbox is not None and isinstance(message, str) and message.startswith("40"):
                outbox.ready = True

        def close(self, close_data: Any = None) -> None:
            # Without eventlet's stderr line per closed socket ("socket shutdown error").
            try:
                self._send_closing_frame(close_data=close_data, ignore_send_errors=True)
                if self.outbox is not None:
                    self.outbox.finish()
                self.socket.shutdown(socket.SHUT_WR)
            except OSError:
                pass
            finally:
                self.socket.close()

    class FanoutWebSocketWSGI(eio_eventlet.WebSocketWSGI):  # type: ignore[misc]
        def __init__(self, handler: Callable[[Any], Any], eio_server: Any) -> None:
            # engine.io passes its Socket's bound handler: its `sid` names the session.
            sid: str = handler.__self__.sid  # type: ignore[attr-defined]

            def handle(ws: Any) -> Any:
                outbox: Outbox | None = getattr(ws, "outbox", None)
                try:
                    return handler(ws)
                finally:
                    if outbox is not None:
                        fanout.close(sid, outbox)

            super().__init__(handle, eio_server)
            self._sid = sid

        def _handle_hybi_request(self, environ: Environ) -> Any:
            plain = super()._handle_hybi_request(environ)
            if plain.extensions:
                return plain  # it negotiated compression: the libraries' path
            ws = FanoutWebSocket(
                plain.socket,
                environ,
                plain.version,
                protocol=plain.protocol,
                extensions=plain.extensions,
                max_frame_length=plain.max_frame_length,
            )
            ws.outbox = fanout.open(self._sid, plain.socket)
            return ws

    eio = server.eio
    eio._async = {**eio._async, "websocket": FanoutWebSocketWSGI}
    manager.fanout = fanout
