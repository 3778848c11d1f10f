"""Capture rides out a broker restart: it says so, counts it, and goes on when it is back."""

from pathlib import Path

from rts_devstack.broker import LocalKafka

from tests.fixtures.capture import CaptureLauncher
from tests.fixtures.processes import ServiceGroup


def test_capture_keeps_capturing_through_a_broker_restart(
    tmp_path: Path, services: ServiceGroup
) -> None:
    broker = LocalKafka.on_ports(tmp_path / "kafka", services.ports(2)).start()
    launcher = CaptureLauncher(services, broker.bootstrap, "")
    try:
        broker.create_topics()
        capture = launcher(
            *"--source test --camera-id cam-restart --no-faces --message-timeout 2".split(),
        )
        capture.wait_for(capture.ready, 15, "readiness")
        frames = "capture_kafka_delivered_total"
        capture.wait_for(lambda: capture.metric(frames, topic="video-frames") > 5, 5, "frames")

        broker.stop_node(1)
        capture.wait_for(lambda: not capture.ready(), 10, "readiness to turn false")
        assert capture.readiness()["kafka"] == "failing"
        failures = "capture_kafka_delivery_failures_total"
        capture.wait_for(lambda: capture.metric(failures, topic="video-frames") > 0, 10, "failures")
        assert capture.metric("capture_source_up") == 1  # the camera is fine

        broker.start_node(1)
        broker.wait_ready()
        capture.wait_for(capture.ready, 20, "readiness after the broker is back")
        delivered = capture.metric(frames, topic="video-frames")
        capture.wait_for(
            lambda: capture.metric(frames, topic="video-frames") > delivered + 5, 10, "frames"
        )
        assert capture.terminate() == 0
        assert any(r.get("msg") == "delivery failed" for r in capture.log_records())
    finally:
        services.kill_all()
        broker.stop()
