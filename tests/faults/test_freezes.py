"""The broker frozen (SIGSTOP: connections open, nothing answered, as in a long GC pause or
on a hung host) again and again under load: after each freeze every consumer of the
gateway is back in its group or reading, and everything a client sees comes back, on a
dashboard held open through all of them and on a new one."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
from confluent_kafka import Producer
from rts_devstack.processes import ServiceProcess, http_get

from tests.faults.conftest import FaultStack, MakeStack
from tests.faults.recovery import Dashboards, served_again, summary

CAMERA = "cam-freeze"
FREEZE_SECONDS = 25.0
# Everything back within this long after the broker resumes: the consumer liveness time
# (30 s) plus a rejoin and the machine's load.
BOUND = 90.0


def _steady(stack: FaultStack) -> tuple[ServiceProcess, ServiceProcess, ServiceProcess]:
    camera = stack.camera(CAMERA)
    sim = stack.event_sim(*"--rate 200 --users 2000 --seed 7".split())
    gateway = stack.gateway("--release-after-seconds", "2")
    gateway.wait_ready(timeout=60)
    served_again(gateway, CAMERA, BOUND)  # all of it up before the first freeze
    return camera, sim, gateway


def _freeze(stack: FaultStack, seconds: float, every_second: Callable[[], None]) -> None:
    stack.kafka.pause_node(1)
    try:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            every_second()
            time.sleep(max(0.0, min(1.0, end - time.monotonic())))
    finally:
        stack.kafka.resume_node(1)


@pytest.mark.timeout(1200)
def test_five_freezes_in_a_row_each_consumer_and_client_view_comes_back(
    make_stack: MakeStack,
) -> None:
    stack = make_stack()
    camera, sim, gateway = _steady(stack)
    held = Dashboards(gateway.url)  # a page left open through every freeze
    recoveries = []
    try:
        for freeze in range(1, 6):
            _freeze(stack, FREEZE_SECONDS, lambda: None)
            took = served_again(gateway, CAMERA, BOUND, held, producers=[sim, camera])
            print(f"freeze {freeze}, back after (s): {summary(took)}", flush=True)
            recoveries.append(took)
    finally:
        held.close()
    slowest = {name: max(t.get(name, 0.0) for t in recoveries) for name in recoveries[0]}
    print(f"slowest over five freezes (s): {summary(slowest)}")
    for service in (camera, sim, gateway):
        assert service.running, f"{service.name} exited:\n{service.log()}"


ODD_CAMERAS = ["no-such-camera", "a" * 300, "%00", "..%2F..%2Fetc", "cam%20x", "-", "_" * 65]
MALFORMED_EVENTS = [
    b"{not json",
    b"\xff\xfe not utf-8",
    b"[]",
    b'{"event_id": "x"}',
    b'{"event_type": "play", "position": "minus one"}',
    b"",
]


@pytest.mark.timeout(600)
def test_a_freeze_polled_for_health_then_odd_requests_and_bad_records(
    make_stack: MakeStack,
) -> None:
    stack = make_stack()
    camera, sim, gateway = _steady(stack)
    polled: list[tuple[int, int]] = []

    def poll() -> None:
        polled.append((gateway.get("/healthz")[0], gateway.get("/readyz")[0]))

    topic = stack.prefix + "playback-events"
    bad_before = gateway.metric("gateway_bad_messages_total", topic=topic)
    _freeze(stack, FREEZE_SECONDS, poll)
    # Right after: about 400 requests for streams of cameras that do not exist or cannot,
    # and malformed records among the events.
    answers: dict[int, int] = {}
    for i in range(400):
        status, _body = http_get(f"{gateway.url}/stream/{ODD_CAMERAS[i % len(ODD_CAMERAS)]}{i}")
        answers[status] = answers.get(status, 0) + 1
    producer = Producer({"bootstrap.servers": stack.kafka.bootstrap})
    for value in MALFORMED_EVENTS:
        producer.produce(topic, value, key=b"bad")
    assert producer.flush(30) == 0
    took = served_again(gateway, CAMERA, BOUND, producers=[sim, camera])
    print(f"health polled during the freeze (healthz, readyz): {polled}")
    print(f"odd stream requests answered: {answers}; back after (s): {summary(took)}")
    assert set(answers) <= {400, 404}, answers
    # The freeze was seen (not ready), and never taken for a dead process (a broker
    # outage must not get the pods restarted).
    assert any(ready != 200 for _health, ready in polled), polled
    assert all(health != 503 for health, _ready in polled), polled
    gateway.wait_for(
        lambda: (
            gateway.metric("gateway_bad_messages_total", topic=topic)
            >= bad_before + len(MALFORMED_EVENTS)
        ),
        30,
        "the malformed records counted",
    )
    for service in (camera, sim, gateway):
        assert service.running, f"{service.name} exited:\n{service.log()}"
