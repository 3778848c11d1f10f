"""Leaders killed and brokers restarted one by one on a three-node cluster, under load:
every event acknowledged to event-sim is counted once in the gateway's totals, and live
video comes back after each failover."""

from __future__ import annotations

import time

import pytest
from rts_common.kafka import admin_client

from tests.faults.conftest import FaultStack, MakeStack, fresh_frame_age

CAMERA = "cam-failover"
EVENTS = 40_000


def _leader(stack: FaultStack, partition: int) -> int:
    topic = stack.prefix + "playback-events"
    admin = admin_client({"bootstrap.servers": stack.kafka.bootstrap}, quiet=True)
    return int(admin.list_topics(topic, timeout=10).topics[topic].partitions[partition].leader)


def _video_back(stack: FaultStack, gateway: object) -> float:
    started = time.monotonic()
    gateway.wait_for(  # type: ignore[attr-defined]
        lambda: fresh_frame_age(gateway, CAMERA) < 2.0,
        90,
        "live video after a failover",  # type: ignore[arg-type]
    )
    return time.monotonic() - started


@pytest.mark.timeout(900)
def test_every_acknowledged_event_is_counted_once_through_leader_kills_and_restarts(
    make_stack: MakeStack,
) -> None:
    stack = make_stack(nodes=3)
    camera = stack.camera(CAMERA)
    gateway = stack.gateway()
    gateway.wait_ready(timeout=90)
    gateway.wait_for(lambda: fresh_frame_age(gateway, CAMERA) < 2.0, 60, "a live frame")
    # It may finish while the rolling restart has a broker down: it waits for every
    # acknowledgement rather than give up on what is queued after the default 10 s.
    sim = stack.event_sim(
        "--count",
        str(EVENTS),
        *"--rate 400 --users 4000 --seed 21 --flush-timeout 120".split(),
    )
    counted = "gateway_playback_events_total"
    gateway.wait_for(lambda: gateway.metric(counted) > 2000, 60, "events counted")

    recoveries = []
    for kill in range(3):
        node = _leader(stack, partition=kill)
        stack.kafka.stop_node(node, kill=True)
        recoveries.append(_video_back(stack, gateway))
        stack.kafka.start_node(node)
        stack.kafka.wait_ready(90)
    for node in (1, 2, 3):  # a rolling restart
        stack.kafka.stop_node(node)
        stack.kafka.start_node(node)
        stack.kafka.wait_ready(90)
    recoveries.append(_video_back(stack, gateway))
    print("live video back after each failover (s):", [round(r, 1) for r in recoveries])

    assert sim.wait_exit(300) == 0, sim.log()
    (finished,) = [r for r in sim.log_records() if r.get("msg") == "finished"]
    assert (finished["delivered"], finished["failed"]) == (EVENTS, 0), finished
    gateway.wait_for(lambda: gateway.metric(counted) >= EVENTS, 120, "every event counted")
    time.sleep(5)  # anything counted twice would show up by now
    assert gateway.metric(counted) == EVENTS
    for service in (camera, gateway):
        assert service.running, f"{service.name} exited:\n{service.log()}"
