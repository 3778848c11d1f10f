"""The Socket.IO fan-out's outbox against real sockets (a socketpair), and the library
versions its shim was written against."""

from __future__ import annotations

import socket
from importlib.metadata import version
from typing import Any

import pytest
from rts_gateway.fanout import Outbox, decline_compression, frame

# The fan-out leaves python-socketio's public API in three places (fanout.py's docstring
# says which); they were checked against these versions. When one moves, read the new
# code of engine.io's eventlet driver and Socket._websocket_handler, eventlet's
# WebSocketWSGI and RFC6455WebSocket, and python-socketio's Manager.emit, then update.
CHECKED = {
    "python-engineio": "4.15.1",
    "python-socketio": "5.18.1",
    "flask-socketio": "5.7.0",
    "eventlet": "0.41.3",
}


@pytest.mark.parametrize("package", sorted(CHECKED))
def test_the_libraries_are_the_versions_the_fanout_was_checked_against(package: str) -> None:
    assert version(package) == CHECKED[package]


class Flusher:
    """What an outbox needs of the fan-out, recorded instead of done on a hub."""

    def __init__(self, backlog_bytes: int) -> None:
        self.backlog_bytes = backlog_bytes
        self.scheduled: list[Outbox] = []
        self.writers: list[Outbox] = []
        self.units_written = 0
        self.units_dropped = 0

    def schedule(self, outbox: Outbox) -> None:
        self.scheduled.append(outbox)

    def flush(self) -> None:
        due, self.scheduled = self.scheduled, []
        for outbox in due:
            outbox.write_now()

    def spawn_writer(self, outbox: Outbox) -> object:
        self.writers.append(outbox)
        return object()


@pytest.fixture
def pair() -> Any:
    server, client = socket.socketpair()
    server.setblocking(False)
    # Small buffers: a client that does not read fills them with a few messages.
    server.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    client.settimeout(2)
    yield server, client
    server.close()
    client.close()


def read_all(client: socket.socket) -> bytes:
    client.setblocking(False)
    data = b""
    while True:
        try:
            chunk = client.recv(65536)
        except BlockingIOError:
            return data
        if not chunk:
            return data
        data += chunk


def test_messages_of_one_turn_are_written_together_in_order(pair: Any) -> None:
    server, client = pair
    fanout = Flusher(backlog_bytes=64 * 1024)
    outbox = Outbox(fanout, server)  # type: ignore[arg-type]
    for i in range(3):
        outbox.push(frame(f"42[{i}]"))
    assert fanout.scheduled == [outbox]  # one flush for the three
    fanout.flush()
    assert read_all(client) == b"".join(frame(f"42[{i}]") for i in range(3))
    assert fanout.units_written == 3
    assert outbox.queued_bytes == 0


def test_a_client_that_does_not_read_loses_what_waits_past_the_bound_and_nothing_else(
    pair: Any,
) -> None:
    server, client = pair
    fanout = Flusher(backlog_bytes=8 * 1024)
    outbox = Outbox(fanout, server)  # type: ignore[arg-type]
    message = frame("4" + "x" * 1000)
    for _ in range(200):  # 200 KB to a client whose buffers hold a few KB
        outbox.push(message)
        fanout.flush()
    outbox.write(frame("2"))  # engine.io's ping: never dropped
    assert fanout.writers == [outbox]  # it is behind: a writer waits for its socket
    assert fanout.units_dropped > 0
    # What waits stays within the bound (and one message): memory and delay both.
    assert outbox.queued_bytes <= fanout.backlog_bytes + 2 * len(message)
    # The client reads at last: whole frames, the ping among them, never half a message.
    received = b""
    while outbox.queued_bytes:
        received += read_all(client)
        outbox._write_some()
    received += read_all(client)
    frames = parse_frames(received)
    assert frames[-1] == b"2"
    assert set(frames[:-1]) == {b"4" + b"x" * 1000}
    assert len(frames) - 1 + fanout.units_dropped == 200


def test_a_closed_client_stops_taking_messages(pair: Any) -> None:
    server, client = pair
    fanout = Flusher(backlog_bytes=64 * 1024)
    outbox = Outbox(fanout, server)  # type: ignore[arg-type]
    client.close()
    outbox.push(frame("42[1]"))
    fanout.flush()
    assert outbox.closed
    outbox.push(frame("42[2]"))
    assert outbox.queued_bytes == 0


def test_frames_have_the_length_forms_of_rfc_6455() -> None:
    assert frame("ab") == b"\x81\x02ab"
    assert frame(b"\x00" * 200)[:4] == b"\x82\x7e\x00\xc8"
    assert frame("x" * 70_000)[:10] == b"\x81\x7f" + (70_000).to_bytes(8, "big")
    assert parse_frames(frame("é" * 100)) == ["é".encode() * 100]


def test_upgrades_reach_socketio_without_their_compression_offer() -> None:
    seen: list[dict[str, Any]] = []

    def app(environ: dict[str, Any], _start: Any) -> list[bytes]:
        seen.append(dict(environ))
        return []

    declining = decline_compression(app, path="socket.io")
    offer = "permessage-deflate; client_max_window_bits"
    declining({"PATH_INFO": "/socket.io/", "HTTP_SEC_WEBSOCKET_EXTENSIONS": offer}, None)
    declining({"PATH_INFO": "/other", "HTTP_SEC_WEBSOCKET_EXTENSIONS": offer}, None)
    assert "HTTP_SEC_WEBSOCKET_EXTENSIONS" not in seen[0]
    assert seen[1]["HTTP_SEC_WEBSOCKET_EXTENSIONS"] == offer


def parse_frames(data: bytes) -> list[bytes]:
    """Unmasked server frames back into their payloads."""
    payloads = []
    while data:
        length, start = data[1] & 0x7F, 2
        if length == 126:
            length, start = int.from_bytes(data[2:4], "big"), 4
        elif length == 127:
            length, start = int.from_bytes(data[2:10], "big"), 10
        payloads.append(data[start : start + length])
        data = data[start + length :]
    return payloads
