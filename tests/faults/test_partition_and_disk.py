"""A gateway cut off from the brokers for a minute, and a broker whose disk fills up."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from rts_devstack.faults import SmallDisk, TcpProxy
from rts_devstack.processes import http_get

from tests.faults.conftest import MakeStack, fresh_frame_age

CAMERA = "cam-fault"


def test_a_gateway_partitioned_from_the_brokers_for_60_seconds_heals_by_itself(
    make_stack: MakeStack,
) -> None:
    stack = make_stack(proxied=True)
    ((listen, advertise),) = stack.kafka.proxied_ports
    with TcpProxy(advertise, listen) as proxy:
        camera = stack.camera(CAMERA)
        sim = stack.event_sim("--rate", "200", "--users", "2000", "--seed", "4")
        # Only the gateway goes through the proxy: capture and event-sim keep producing.
        gateway = stack.gateway(
            "--release-after-seconds", "2", bootstrap=stack.kafka.proxied_bootstrap
        )
        gateway.wait_ready(timeout=60)
        gateway.wait_for(lambda: fresh_frame_age(gateway, CAMERA) < 2.0, 60, "a live frame")
        counted = "gateway_playback_events_total"
        gateway.wait_for(lambda: gateway.metric(counted) > 500, 60, "events counted")

        proxy.block()
        blocked = time.monotonic()
        took = gateway.wait_for(lambda: not gateway.ready(), 30, "readiness to turn false")
        print(f"gateway unready {took:.1f}s into the partition")
        assert http_get(gateway.url + "/")[0] in (200, 401)  # the page is still served
        time.sleep(max(0.0, 60 - (time.monotonic() - blocked)))
        proxy.heal()
        healed = time.monotonic()

        ready_after = gateway.wait_for(gateway.ready, 90, "readiness after the partition")
        gateway.wait_for(lambda: fresh_frame_age(gateway, CAMERA) < 2.0, 90, "live video")
        before = gateway.metric(counted)
        gateway.wait_for(lambda: gateway.metric(counted) > before + 200, 60, "events again")
        # No partition of the group left without an owner.
        topic = stack.prefix + "playback-events"
        gateway.wait_for(
            lambda: gateway.metric("gateway_partitions_assigned", topic=topic) == 3,
            60,
            "all three events partitions owned again",
        )
        print(
            f"after healing: ready in {ready_after:.1f}s, live video in "
            f"{time.monotonic() - healed:.1f}s at most"
        )
        assert gateway.get("/healthz")[0] == 200
        for service in (camera, sim, gateway):
            assert service.running, f"{service.name} exited:\n{service.log()}"


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a size-limited tmpfs needs root")
def test_a_full_broker_disk_makes_producers_report_failures_and_everything_resumes(
    make_stack: MakeStack, tmp_path: Path
) -> None:
    with SmallDisk(tmp_path / "disk", size_mb=160) as disk:
        stack = make_stack(data=disk.path / "kafka")
        camera = stack.camera(CAMERA)
        sim = stack.event_sim("--rate", "200", "--users", "2000", "--seed", "6")
        gateway = stack.gateway("--release-after-seconds", "2")
        gateway.wait_ready(timeout=60)
        gateway.wait_for(lambda: fresh_frame_age(gateway, CAMERA) < 2.0, 60, "a live frame")
        failures = "capture_kafka_delivery_failures_total"

        disk.fill()
        filled = time.monotonic()
        camera.wait_for(lambda: camera.metric(failures) > 0, 60, "capture to report failures")
        gateway.wait_for(lambda: not gateway.ready(), 60, "the gateway to turn unready")
        broker_exited = not stack.kafka.running()
        print(
            f"disk full: capture failing after {time.monotonic() - filled:.1f}s; "
            f"the broker {'stopped itself' if broker_exited else 'kept running'}"
        )
        time.sleep(10)
        for service in (camera, sim, gateway):
            assert service.running, f"{service.name} exited:\n{service.log()}"

        disk.release()
        if broker_exited:  # Kafka stops when its only log directory fails; restart it
            stack.kafka.start_node(1)
        stack.kafka.wait_ready(120)
        freed = time.monotonic()
        gateway.wait_for(gateway.ready, 120, "the gateway ready again")
        gateway.wait_for(lambda: fresh_frame_age(gateway, CAMERA) < 2.0, 60, "live video")
        print(f"space back: gateway ready and video live {time.monotonic() - freed:.1f}s later")
        delivered = sim.metric("eventsim_events_total")
        sim.wait_for(
            lambda: sim.metric("eventsim_events_total") > delivered + 200,
            60,
            "events delivered again",
        )
        code = sim.terminate(timeout=60)
        (finished,) = [r for r in sim.log_records() if r.get("msg") == "finished"]
        assert code == (0 if finished["failed"] == 0 else 1), sim.log()
        assert finished["sent"] == finished["delivered"] + finished["failed"]
        for service in (camera, gateway):
            assert service.running, f"{service.name} exited:\n{service.log()}"
