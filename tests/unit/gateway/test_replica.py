"""Which replica answered: the header on every response, the label on /metrics."""

from __future__ import annotations

import os
import socket

from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from tests.unit.gateway.conftest import MakeGateway


def test_every_response_names_the_replica_socketio_polling_included(
    make_gateway: MakeGateway,
) -> None:
    client = make_gateway(replica="gateway-7").app.test_client()
    for path in (
        "/healthz",
        "/",
        "/api/cameras",
        "/stream/nowhere",
        "/socket.io/?EIO=4&transport=polling",
    ):
        response = client.get(path)
        assert response.headers.get("X-Gateway-Replica") == "gateway-7", (path, response.status)
    handshake = client.get("/socket.io/?EIO=4&transport=polling")
    assert handshake.status_code == 200
    assert b'"sid"' in handshake.data  # answered by engine.io, not by a Flask route


def test_the_replica_defaults_to_host_and_process(make_gateway: MakeGateway) -> None:
    response = make_gateway().app.test_client().get("/healthz")
    assert response.headers["X-Gateway-Replica"] == f"{socket.gethostname()}-{os.getpid()}"


def test_metrics_name_the_replica_once_on_the_build_info(make_gateway: MakeGateway) -> None:
    # What the ops port serves (tests/integration checks that port itself).
    text = generate_latest(make_gateway(replica="gateway-7").metrics.registry).decode()
    (info,) = [
        sample
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "rts_build_info"
    ]
    assert info.labels["replica"] == "gateway-7"
    assert info.labels["service"] == "gateway"
    # Target labels (`pod`) stay Prometheus's: no series of the gateway claims one.
    assert 'pod="' not in text
