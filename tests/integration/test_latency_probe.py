"""The latency probe against the real stack: the broker, two test-pattern cameras, and
the gateway with sign-in on, all real processes; the probe signs in with the gateway's
secret, keeps one low-rate stream per camera, and exports the latency it sees.

The stack is started here rather than by a shared fixture (tests/fixtures is being
reorganised); it is the one test_gateway_streaming.py starts, with sign-in."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest
from prometheus_client.parser import text_string_to_metric_families
from rts_common.contracts import TOPICS

from tests.fixtures.kafka import KafkaUnderTest
from tests.fixtures.processes import ServiceProcess, free_port

CAMERAS = ("cam-probe-a", "cam-probe-b")
SECRET = "probe-test-secret-0123456789"
PROBE_FPS = 2


@dataclass
class ProbeStack:
    gateway: ServiceProcess
    gateway_url: str
    probe: ServiceProcess
    probe_url: str

    def probe_metric(self, name: str, **labels: str) -> float:
        return _metric(self.probe_url + "/metrics", name, labels)

    def gateway_metric(self, name: str, **labels: str) -> float:
        return _metric(self.gateway_url + "/metrics", name, labels)


def _metric(url: str, name: str, labels: dict[str, str]) -> float:
    text = urllib.request.urlopen(url, timeout=5).read().decode()
    total = 0.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                total += sample.value
    return total


def _wait(condition: Callable[[], bool], timeout: float, what: str, *logs: ServiceProcess) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if condition():
                return
        except (OSError, ValueError):
            pass
        time.sleep(0.3)
    raise AssertionError(f"no {what} within {timeout}s:\n" + "\n".join(p.log() for p in logs))


@pytest.fixture(scope="module")
def stack(kafka: KafkaUnderTest) -> Iterator[ProbeStack]:
    prefix = f"pr{uuid.uuid4().hex[:8]}."
    kafka.create_topics(list(TOPICS), prefix)
    env = {"KAFKA_BOOTSTRAP": kafka.bootstrap, "KAFKA_TOPIC_PREFIX": prefix}
    cameras = [
        ServiceProcess(camera, ["capture", "--source", "test", "--camera-id", camera,
                                "--fps", "10", "--test-width", "320", "--test-height", "240",
                                "--no-faces", "--ops-port", str(free_port())], env)
        for camera in CAMERAS
    ]  # fmt: skip
    port, probe_port = free_port(), free_port()
    gateway = ServiceProcess(
        "gateway", ["gateway", "--port", str(port)], {**env, "GATEWAY_AUTH_SECRET": SECRET}
    )
    gateway_url = f"http://127.0.0.1:{port}"
    probe = None
    try:
        gateway.wait_http(gateway_url + "/readyz", timeout=60)
        probe = ServiceProcess(
            "latency-probe",
            ["latency-probe", "--gateway-url", gateway_url, "--fps", str(PROBE_FPS),
             "--cameras-interval", "2", "--ops-port", str(probe_port)],
            {"PROBE_AUTH_SECRET": SECRET},
        )  # fmt: skip
        probe_url = f"http://127.0.0.1:{probe_port}"
        probe.wait_http(probe_url + "/healthz", timeout=30)
        yield ProbeStack(gateway, gateway_url, probe, probe_url)
    finally:
        for process in [p for p in (probe, gateway, *cameras) if p is not None]:
            process.kill()


def test_probe_watches_every_camera_and_exports_capture_to_receipt_latency(
    stack: ProbeStack,
) -> None:
    def every_camera_measured() -> bool:
        return all(
            stack.probe_metric("probe_frame_latency_seconds_count", camera=c) >= 5 for c in CAMERAS
        )

    _wait(every_camera_measured, 90, "latency for both cameras", stack.probe, stack.gateway)
    for camera in CAMERAS:
        count = stack.probe_metric("probe_frame_latency_seconds_count", camera=camera)
        total = stack.probe_metric("probe_frame_latency_seconds_sum", camera=camera)
        # Loopback and one busy machine: well under a second, and never negative.
        assert 0 <= total / count < 2.0, (camera, total / count)
    status = json.loads(urllib.request.urlopen(stack.probe_url + "/readyz", timeout=5).read())
    assert status["ready"] is True
    assert status["cameras"] == sorted(CAMERAS)
    assert stack.probe_metric("probe_streams_open") == len(CAMERAS)
    assert stack.probe_metric("probe_cameras") == len(CAMERAS)


def test_probe_is_a_low_rate_signed_in_viewer_of_the_gateway(stack: ProbeStack) -> None:
    _wait(lambda: stack.gateway_metric("gateway_mjpeg_viewers") >= len(CAMERAS), 60,
          "the probe's streams at the gateway", stack.probe, stack.gateway)  # fmt: skip
    for camera in CAMERAS:
        assert stack.gateway_metric("gateway_mjpeg_viewers", camera=camera) == 1
    # At the fps the probe asks for, not the cameras' 10 fps.
    before = {c: stack.probe_metric("probe_frames_total", camera=c) for c in CAMERAS}
    time.sleep(5)
    for camera in CAMERAS:
        rate = (stack.probe_metric("probe_frames_total", camera=camera) - before[camera]) / 5
        assert 0.5 <= rate <= PROBE_FPS + 1, (camera, rate)
    # Without a session the gateway refuses the same stream: the probe's frames came
    # through sign-in.
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(f"{stack.gateway_url}/stream/{CAMERAS[0]}", timeout=5)
    assert refused.value.code == 401
