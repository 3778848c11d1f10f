"""Gateways for unit tests: the real composition, threading mode, consumers never started,
fed real confluent-kafka Message objects through the real decode path."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from flask.testing import FlaskClient
from flask_socketio import SocketIOTestClient
from rts_common.contracts import VIDEO_CAMERAS
from rts_gateway.service import Gateway
from rts_gateway.settings import GatewaySettings

from tests.unit.gateway.helpers import batch_of, status_message

MakeGateway = Callable[..., Gateway]


@pytest.fixture
def make_gateway() -> MakeGateway:
    """A Gateway with test settings (no broadcast: its producer would look for a broker);
    keyword arguments override settings."""

    def make(**settings: Any) -> Gateway:
        defaults: dict[str, Any] = {
            "async_mode": "threading",
            "broadcast": False,
            "snapshot_wait_seconds": 0.2,
            "event_sample_rate": 5,
            "wall_width": 32,
        }
        return Gateway(GatewaySettings(**(defaults | settings)))

    return make


@pytest.fixture
def gateway(make_gateway: MakeGateway) -> Gateway:
    """A gateway that knows one camera, "front", on partition 0."""
    gateway = make_gateway()
    directory = gateway.video.directory
    directory.on_batch(batch_of(VIDEO_CAMERAS, [status_message("front", 0)], gateway.metrics))
    directory.assigned({0: 1})
    return gateway


@pytest.fixture
def client(gateway: Gateway) -> FlaskClient:
    return gateway.app.test_client()


@pytest.fixture
def socket_client(gateway: Gateway) -> SocketIOTestClient:
    return gateway.socketio.test_client(gateway.app)


def received(client: SocketIOTestClient, name: str) -> list[Any]:
    return [m["args"][0] for m in client.get_received() if m["name"] == name]
