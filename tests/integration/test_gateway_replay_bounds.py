"""Replays within bounds, over real HTTP against the real broker: a time parameter is
refused (400, never 500) before any Kafka read is opened, and a replay's memory stays
bounded in bytes however slowly its viewer reads, records in flight included."""

from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from confluent_kafka import Producer
from rts_common.contracts import TOPICS, CameraStatus, FrameMeta

from tests.fixtures.kafka import KafkaUnderTest
from tests.fixtures.mjpeg import MjpegClient
from tests.fixtures.processes import ServiceGroup, ServiceProcess, kafka_env, start_gateway

CAMERA = "cam-large"
PARTITION = 1
FRAMES = 150
FRAME_BYTES = 1024 * 1024
BUFFER_BYTES = 4 * 1024 * 1024
NINES = "9" * 400


@dataclass
class Stack:
    gateway: ServiceProcess
    prefix: str

    def metric(self, name: str, **labels: str) -> float:
        return self.gateway.metric(name, **labels)


def large_jpeg() -> bytes:
    """A record that passes the frame contract's checks: JPEG markers around noise."""
    return b"\xff\xd8" + os.urandom(FRAME_BYTES - 4) + b"\xff\xd9"


@pytest.fixture(scope="module")
def stack(kafka: KafkaUnderTest) -> Iterator[Stack]:
    """A camera whose last 150 seconds are 1 MiB frames, one a second, on a known partition
    (written straight to Kafka, as a capture of a 4K camera would), and a gateway."""
    prefix = f"rb{uuid.uuid4().hex[:8]}."
    kafka.create_topics(list(TOPICS), prefix)
    producer = Producer(kafka.config(**{"message.max.bytes": 2 * FRAME_BYTES, "linger.ms": 5}))
    start_ns = time.time_ns() - (FRAMES + 5) * 10**9
    for seq in range(FRAMES):
        ts = start_ns + seq * 10**9
        producer.produce(
            prefix + "video-frames",
            large_jpeg(),
            key=CAMERA,
            partition=PARTITION,
            headers=FrameMeta(CAMERA, seq, ts, 3840, 2160).headers(),
            timestamp=ts // 10**6,
        )
        producer.poll(0)
    status = CameraStatus(
        camera=CAMERA,
        ts=time.time_ns(),
        source="test",
        source_up=True,
        fps=1.0,
        width=3840,
        height=2160,
        partition=PARTITION,
    )
    producer.produce(prefix + "video-cameras", status.model_dump_json(), key=CAMERA)
    assert producer.flush(30) == 0
    with ServiceGroup(kafka_env(kafka.bootstrap, prefix)) as group:
        gateway = start_gateway(
            group,
            env={"GATEWAY_REPLAY_BUFFER_BYTES": str(BUFFER_BYTES)},
        )
        gateway.wait_ready(timeout=60)
        gateway.wait_for(lambda: _known(gateway.url), 30, "the camera in the directory")
        yield Stack(gateway, prefix)


def _known(base: str) -> bool:
    with urllib.request.urlopen(base + "/api/cameras", timeout=5) as response:
        return any(c["camera"] == CAMERA for c in json.loads(response.read())["cameras"])


@pytest.mark.parametrize(
    "query",
    [
        f"from=-{NINES}s",
        "from=-99999999h",
        "from=-745h",
        "from=0001-01-01T00:00:00Z",
        "from=9999-12-31T23:59:59Z",
        f"from=2026-01-01T00:00:00{'0' * 2000}",
        "from=-30s&fps=1e400",
    ],
)
def test_an_out_of_bounds_replay_time_is_a_400_and_opens_no_kafka_read(
    stack: Stack, query: str
) -> None:
    opened = stack.metric("gateway_kafka_reads_opened_total")
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(f"{stack.gateway.url}/stream/{CAMERA}?{query}", timeout=10)
    assert info.value.code == 400, info.value.read()[:300]
    message = json.loads(info.value.read())["error"]
    assert message.startswith(("from=", "fps=")), message
    assert len(message) < 300
    assert stack.metric("gateway_kafka_reads_opened_total") == opened
    assert stack.metric("gateway_kafka_reads") == 0


def test_a_replay_holds_a_bounded_number_of_bytes_while_its_viewer_does_not_read(
    stack: Stack,
) -> None:
    rss_before = stack.gateway.rss_bytes()
    # A viewer that reads the response head and then nothing: the gateway's writes block
    # once the socket buffers are full, and the replay must stop reading Kafka.
    # From the oldest frames (written FRAMES + 5 s before the module began): any earlier
    # moment is one Kafka does not hold, a 416, when the test runs within seconds of it.
    viewer = MjpegClient(f"{stack.gateway.url}/stream/{CAMERA}?from=-{FRAMES}s", rcvbuf=4096)
    assert viewer.status == 200
    held, rss = [], []
    for _ in range(16):
        time.sleep(0.5)
        held.append(stack.metric("gateway_replay_buffered_bytes"))
        rss.append(stack.gateway.rss_bytes())
    replays_open = stack.metric("gateway_kafka_reads", kind="replay")
    viewer.close()
    growth = max(rss) - rss_before
    # The replay's bound, librdkafka's small prefetch and a fetch in flight; a bound in
    # frames checked only between polls let this grow past 64 MiB.
    assert growth < 24 * 1024 * 1024, [r - rss_before for r in rss]
    # One read's worth of frames, plus the one frame that may cross the bound.
    assert 0 < max(held) <= BUFFER_BYTES + FRAME_BYTES, held
    assert replays_open == 1
    stack.gateway.wait_for(
        lambda: stack.metric("gateway_kafka_reads") == 0,
        15,
        "the replay's read closed once its viewer left",
    )
    assert stack.metric("gateway_replay_buffered_bytes") == 0
