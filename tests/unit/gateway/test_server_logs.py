"""What the server's libraries write to `wsgi.errors` reaches the log, not bare stderr."""

from __future__ import annotations

import logging
import socket
from collections.abc import Iterable
from typing import Any

import pytest
from rts_gateway.server import ErrorsThroughLogging


def test_a_websocket_closed_after_its_client_left_is_a_debug_line_not_stderr_noise(
    caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    from eventlet.websocket import RFC6455WebSocket

    def app(environ: dict[str, Any], _start_response: Any) -> Iterable[bytes]:
        ours, _theirs = socket.socketpair()
        websocket = RFC6455WebSocket(ours, environ, version=13)
        ours.close()  # the connection is already gone when the WebSocket ends
        websocket.close()
        return []

    with caplog.at_level(logging.DEBUG, logger="rts_gateway.wsgi"):
        ErrorsThroughLogging(app)({}, lambda *_args: None)

    assert "socket shutdown error" not in capsys.readouterr().err
    (record,) = [r for r in caplog.records if r.name == "rts_gateway.wsgi"]
    assert record.levelno == logging.DEBUG
    assert record.getMessage().endswith("socket shutdown error: [Errno 9] Bad file descriptor")


def test_anything_else_written_to_wsgi_errors_is_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def app(environ: dict[str, Any], _start_response: Any) -> Iterable[bytes]:
        environ["wsgi.errors"].write("a library complains\nabout two things\n")
        return []

    ErrorsThroughLogging(app)({}, lambda *_args: None)
    said = [(r.levelno, r.getMessage()) for r in caplog.records if r.name == "rts_gateway.wsgi"]
    assert said == [
        (logging.WARNING, "a library complains"),
        (logging.WARNING, "about two things"),
    ]
