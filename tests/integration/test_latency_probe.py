"""The latency probe against the real stack: the broker, two test-pattern cameras, and
the gateway with sign-in on, all real processes; the probe signs in with the gateway's
secret, keeps one low-rate stream per camera, and exports the latency it sees."""

from __future__ import annotations

import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from rts_common.contracts import TOPICS
from rts_devstack import launch

from tests.fixtures.kafka import KafkaUnderTest
from tests.fixtures.processes import (
    ServiceGroup,
    ServiceProcess,
    kafka_env,
    start_capture,
    start_gateway,
)

CAMERAS = ("cam-probe-a", "cam-probe-b")
SECRET = "probe-test-secret-0123456789"
PROBE_FPS = 2


@dataclass
class ProbeStack:
    gateway: ServiceProcess
    probe: ServiceProcess

    def wait(self, condition: object, timeout: float, what: str) -> None:
        self.probe.wait_for(condition, timeout, what)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def stack(kafka: KafkaUnderTest) -> Iterator[ProbeStack]:
    prefix = f"pr{uuid.uuid4().hex[:8]}."
    kafka.create_topics(list(TOPICS), prefix)
    with ServiceGroup(kafka_env(kafka.bootstrap, prefix)) as group:
        for camera in CAMERAS:
            start_capture(
                group,
                camera,
                *"--source test --fps 10 --test-width 320 --test-height 240 --no-faces".split(),
            )
        gateway = start_gateway(group, env={"GATEWAY_AUTH_SECRET": SECRET})
        gateway.wait_ready(timeout=60)
        probe = group.start(
            launch.latency_probe(
                *f"--fps {PROBE_FPS} --cameras-interval 2".split(),
                gateway_url=gateway.url,
                ops_port=group.port(),
                env={"PROBE_AUTH_SECRET": SECRET},
            )
        )
        probe.wait_http(f"{probe.ops}/healthz", timeout=30)
        yield ProbeStack(gateway, probe)


def test_probe_watches_every_camera_and_exports_capture_to_receipt_latency(
    stack: ProbeStack,
) -> None:
    probe = stack.probe

    def every_camera_measured() -> bool:
        return all(
            probe.metric("probe_frame_latency_seconds_count", camera=c) >= 5 for c in CAMERAS
        )

    probe.wait_for(every_camera_measured, 90, "latency for both cameras")
    for camera in CAMERAS:
        count = probe.metric("probe_frame_latency_seconds_count", camera=camera)
        total = probe.metric("probe_frame_latency_seconds_sum", camera=camera)
        # Loopback and one busy machine: well under a second, and never negative.
        assert 0 <= total / count < 2.0, (camera, total / count)
    status = probe.readiness()
    assert status["ready"] is True
    assert status["cameras"] == sorted(CAMERAS)
    assert probe.metric("probe_streams_open") == len(CAMERAS)
    assert probe.metric("probe_cameras") == len(CAMERAS)


def test_probe_is_a_low_rate_signed_in_viewer_the_gateway_tells_apart(
    stack: ProbeStack,
) -> None:
    gateway, probe = stack.gateway, stack.probe
    viewers = "gateway_mjpeg_viewers"
    gateway.wait_for(lambda: gateway.metric(viewers) >= len(CAMERAS), 60, "the probe's streams")
    for camera in CAMERAS:
        assert gateway.metric(viewers, camera=camera, viewer_kind="probe") == 1
        assert gateway.metric(viewers, camera=camera, viewer_kind="browser") == 0
    # At the fps the probe asks for, not the cameras' 10 fps.
    before = {c: probe.metric("probe_frames_total", camera=c) for c in CAMERAS}
    time.sleep(5)
    for camera in CAMERAS:
        rate = (probe.metric("probe_frames_total", camera=camera) - before[camera]) / 5
        assert 0.5 <= rate <= PROBE_FPS + 1, (camera, rate)
    latency = "gateway_frame_latency_seconds_count"
    assert gateway.metric(latency, viewer_kind="probe") > 0
    assert gateway.metric(latency, viewer_kind="browser") == 0
    # Without a session the gateway refuses the same stream: the probe's frames came
    # through sign-in.
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(f"{gateway.url}/stream/{CAMERAS[0]}", timeout=5)
    assert refused.value.code == 401
