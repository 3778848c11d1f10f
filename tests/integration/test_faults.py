"""Faults survived, with real processes: a broker that stops answering, then comes back.

Each test runs its own broker, so freezing or killing it disturbs no other test.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from rts_common.contracts import TOPICS
from rts_common.net import free_ports
from rts_devstack.broker import LocalKafka
from rts_devstack.processes import ServiceGroup, ServiceProcess, http_get

from tests.fixtures.mjpeg import MjpegClient
from tests.fixtures.processes import kafka_env, start_capture, start_gateway

CAMERA = "cam-fault"


@dataclass
class Outage:
    broker: LocalKafka
    gateway: ServiceProcess
    capture: ServiceProcess


@pytest.fixture
def outage(tmp_path: Path) -> Iterator[Outage]:
    ports = free_ports(2)
    broker = LocalKafka(tmp_path / "kafka", ports=ports[:1], controller_ports=ports[1:])
    with broker:
        prefix = f"f{uuid.uuid4().hex[:8]}."
        broker.create_topics(TOPICS, prefix=prefix)
        with ServiceGroup(kafka_env(broker.bootstrap, prefix)) as group:
            capture = start_capture(group, CAMERA, "--source", "test", "--fps", "10",
                                    "--test-width", "320", "--test-height", "240", "--no-faces")  # fmt: skip
            gateway = start_gateway(group, "--release-after-seconds", "2")
            gateway.wait_ready(timeout=60)
            gateway.wait_for(lambda: _fresh_part(gateway, 10.0) < 2.0, 60, "a live frame")
            yield Outage(broker, gateway, capture)


def _fresh_part(gateway: ServiceProcess, timeout: float) -> float:
    """The age of the first frame a new viewer gets (seconds)."""
    client = MjpegClient(f"{gateway.url}/stream/{CAMERA}", timeout=timeout)
    try:
        return client.part().age_seconds
    finally:
        client.close()


def test_video_and_health_come_back_after_the_broker_froze_for_25_seconds(outage: Outage) -> None:
    gateway = outage.gateway
    topic_reads = lambda: gateway.metric("gateway_camera_reads")  # noqa: E731
    gateway.wait_for(lambda: topic_reads() == 0, 30, "the idle camera's partition released")
    outage.broker.pause_node(1)
    started = time.monotonic()
    try:
        took = gateway.wait_for(lambda: http_get(gateway.ops + "/readyz")[0] == 503, 20,
                                "readiness to say the broker is gone")  # fmt: skip
        print(f"readiness false {took:.1f}s into the outage")
        # A viewer arrives while the broker cannot answer, and gives up.
        with pytest.raises(OSError):
            _fresh_part(gateway, 3.0)
        time.sleep(max(0.0, 25 - (time.monotonic() - started)))
    finally:
        outage.broker.resume_node(1)
    resumed = time.monotonic()
    gateway.wait_for(lambda: http_get(gateway.ops + "/readyz")[0] == 200, 60, "readiness again")
    ready_after = time.monotonic() - resumed
    gateway.wait_for(lambda: _fresh_part(gateway, 5.0) < 2.0, 60, "live video for a new viewer")
    video_after = time.monotonic() - resumed
    status, _ = http_get(f"{gateway.url}/snapshot/{CAMERA}.jpg")
    assert status == 200
    received = gateway.metric("gateway_frames_received_total", camera=CAMERA)
    time.sleep(2)
    assert gateway.metric("gateway_frames_received_total", camera=CAMERA) > received
    print(f"after the broker resumed: ready in {ready_after:.1f}s, video in {video_after:.1f}s")
    assert gateway.running, gateway.log()
    assert outage.capture.running, outage.capture.log()
