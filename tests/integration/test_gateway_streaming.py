"""MJPEG streaming end to end: the real capture test source, the real broker, and the
gateway under gunicorn in each async mode, spoken to over real HTTP."""

from __future__ import annotations

import io
import json
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from confluent_kafka import Producer
from PIL import Image
from rts_common.contracts import TOPICS, FrameMeta

from tests.fixtures.kafka import KafkaUnderTest
from tests.fixtures.mjpeg import MjpegClient, Part
from tests.fixtures.processes import (
    ServiceGroup,
    ServiceProcess,
    kafka_env,
    start_capture,
    start_gateway,
)

FPS = 15
CAMERA = "cam-it"
OTHER = "cam-it-2"


@dataclass
class Stack:
    base: str
    prefix: str
    gateway: ServiceProcess
    kafka: KafkaUnderTest
    started: float

    def metric(self, name: str, **labels: str) -> float:
        return self.gateway.metric(name, **labels)


@pytest.fixture(scope="module", params=["eventlet", "threading"])
def stack(request: pytest.FixtureRequest, kafka: KafkaUnderTest) -> Iterator[Stack]:
    mode = request.param
    prefix = f"gw{uuid.uuid4().hex[:8]}."
    kafka.create_topics(list(TOPICS), prefix)
    with ServiceGroup(kafka_env(kafka.bootstrap, prefix)) as group:
        for camera in (CAMERA, OTHER):
            start_capture(
                group,
                camera,
                "--source",
                "test",
                "--fps",
                str(FPS),
                *"--test-width 320 --test-height 240 --no-faces".split(),
            )
        gateway = start_gateway(
            group,
            "--async-mode",
            mode,
            *"--stall-timeout-seconds 4 --release-after-seconds 1 --default-camera".split(),
            CAMERA,
            # The test pattern's frames are small (~12 KB): a buffer of about one frame, as
            # the default is for 720p, so a slow reader feels backpressure within a second.
            "--stream-send-buffer",
            "16384",
        )
        gateway.wait_ready(timeout=60)
        gateway.wait_for(
            lambda: len(_get_json(gateway.url + "/api/cameras")["cameras"]) == 2,
            30,
            "both cameras in the directory",
        )
        yield Stack(gateway.url, prefix, gateway, kafka, time.time())


def _get_json(url: str) -> dict:  # type: ignore[type-arg]
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.loads(response.read())


def _seqs(parts: list[Part]) -> list[int]:
    return [int(p.headers["X-Frame-Seq"]) for p in parts]


def test_a_viewer_gets_valid_jpeg_parts_in_order_at_the_source_rate(stack: Stack) -> None:
    client = MjpegClient(f"{stack.base}/stream/{CAMERA}")
    assert client.status == 200
    assert client.headers["content-type"] == "multipart/x-mixed-replace; boundary=frame"
    parts = client.parts_for(4.0)
    client.close()
    seqs = _seqs(parts)
    assert seqs == sorted(seqs)
    assert len(set(seqs)) == len(seqs)
    assert len(parts) >= 0.7 * FPS * 4, seqs  # allow for a loaded CI machine
    for part in parts[:5]:
        image = Image.open(io.BytesIO(part.jpeg))
        image.load()
        assert image.size == (320, 240)
        assert part.headers["X-Camera"] == CAMERA
        age = part.received - int(part.headers["X-Frame-Timestamp"]) / 1e9
        assert -0.5 < age < 2.0, age  # live, not a backlog


def test_two_viewers_of_one_camera_cause_one_kafka_read(stack: Stack) -> None:
    before = stack.metric(
        "gateway_partition_assignments_total", topic=stack.prefix + "video-frames"
    )
    time.sleep(2.0)  # earlier viewers' partitions are released after a second
    first = MjpegClient(f"{stack.base}/stream/{CAMERA}")
    second = MjpegClient(f"{stack.base}/stream/{CAMERA}")
    a, b = first.parts_for(2.0), second.parts_for(1.0)
    assert a
    assert b
    assert stack.metric("gateway_mjpeg_viewers", camera=CAMERA) == 2
    assert stack.metric("gateway_partitions_assigned", topic=stack.prefix + "video-frames") == 1
    after = stack.metric("gateway_partition_assignments_total", topic=stack.prefix + "video-frames")
    assert after - before == 1
    first.close()
    second.close()


def test_a_slow_viewer_gets_fewer_newer_frames_without_slowing_others_or_growing_memory(
    stack: Stack,
) -> None:
    fast = MjpegClient(f"{stack.base}/stream/{CAMERA}")
    fast.parts_for(1.0)
    rss_before = stack.gateway.rss_bytes()
    skipped_before = stack.metric("gateway_frames_skipped_total", reason="slow_client")
    slow = MjpegClient(f"{stack.base}/stream/{CAMERA}", rcvbuf=4096)
    slow_parts: list[Part] = []
    fast_parts: list[Part] = []
    # What the camera delivered meanwhile, not its nominal rate: a starved machine slows
    # capture too, and the point is that the slow viewer costs the fast one nothing.
    received_before = stack.metric("gateway_frames_received_total", camera=CAMERA)
    end = time.monotonic() + 6
    while time.monotonic() < end:
        fast_parts += fast.parts_for(0.5)
        slow_parts.append(slow.part())  # one frame per half second: ~2 fps of a 15 fps camera
    received = stack.metric("gateway_frames_received_total", camera=CAMERA) - received_before
    rss_after = stack.gateway.rss_bytes()
    fast.close()
    slow.close()
    assert received >= 0.5 * FPS * 6, received  # the camera kept going
    assert len(fast_parts) >= 0.85 * received - 2, (len(fast_parts), received)
    assert len(slow_parts) < len(fast_parts) / 3
    gaps = [b - a for a, b in zip(_seqs(slow_parts), _seqs(slow_parts)[1:], strict=False)]
    assert max(gaps) > 2, gaps  # it skipped frames rather than queueing them...
    newest = int(slow_parts[-1].headers["X-Frame-Timestamp"]) / 1e9
    assert slow_parts[-1].received - newest < 2.5  # ...so what it gets is recent
    assert stack.metric("gateway_frames_skipped_total", reason="slow_client") > skipped_before
    assert rss_after - rss_before < 20 * 1024 * 1024, (rss_before, rss_after)


def test_a_viewer_that_stops_reading_is_dropped(stack: Stack) -> None:
    before = stack.metric("gateway_viewers_dropped_total", reason="stalled")
    stalled = MjpegClient(f"{stack.base}/stream/{OTHER}", rcvbuf=2048)
    stalled.part()
    # Stop reading: the socket buffers fill, the gateway's write blocks, the stall
    # timeout (4 s here) drops the viewer.
    stack.gateway.wait_for(
        lambda: stack.metric("gateway_viewers_dropped_total", reason="stalled") > before,
        40,
        "stalled viewer dropped",
    )
    stalled.close()


def test_replay_starts_the_requested_seconds_back_then_joins_live(stack: Stack) -> None:
    wait = stack.started + 9 - time.time()
    if wait > 0:
        time.sleep(wait)  # let the camera build up history
    requested = time.time()
    client = MjpegClient(f"{stack.base}/stream/{CAMERA}?from=-6s")
    parts = client.parts_for(8.0)
    client.close()
    first_ts = int(parts[0].headers["X-Frame-Timestamp"]) / 1e9
    assert abs((requested - first_ts) - 6.0) < 1.5, requested - first_ts
    # paced as captured: 2 s of wall time replay about 2 s of capture time
    early = [p for p in parts if p.received - parts[0].received < 2.0]
    span = (
        int(early[-1].headers["X-Frame-Timestamp"]) - int(early[0].headers["X-Frame-Timestamp"])
    ) / 1e9
    assert 1.2 < span < 2.8, span
    last_age = parts[-1].received - int(parts[-1].headers["X-Frame-Timestamp"]) / 1e9
    assert last_age < 2.0, last_age  # live again by the end
    assert _seqs(parts) == sorted(_seqs(parts))


def test_replay_outside_retention_or_with_a_bad_time_is_a_clear_error(stack: Stack) -> None:
    for query, status in (("from=-3h", 416), ("from=soon", 400)):
        with pytest.raises(urllib.error.HTTPError) as info:
            urllib.request.urlopen(f"{stack.base}/stream/{CAMERA}?{query}", timeout=10)
        assert info.value.code == status
        assert "error" in json.loads(info.value.read())


def test_corrupt_records_are_skipped_and_counted_and_the_stream_goes_on(stack: Stack) -> None:
    topic = stack.prefix + "video-frames"
    client = MjpegClient(f"{stack.base}/stream/{CAMERA}")
    client.parts_for(1.0)
    producer = Producer(stack.kafka.config(**{"message.max.bytes": 6 * 1024 * 1024}))
    meta = FrameMeta(CAMERA, 1, time.time_ns(), 320, 240)
    good_headers = meta.headers()
    jpeg = b"\xff\xd8" + bytes(range(256)) * 40 + b"\xff\xd9"
    flipped = bytearray(jpeg)
    flipped[5000] ^= 0x01
    png = io.BytesIO()
    Image.new("RGB", (8, 8)).save(png, "PNG")
    corrupt = {
        "missing_header": [(b"\xff\xd8 no headers \xff\xd9", None)],
        "bad_header": [(jpeg, [("seq", b"one"), ("ts", b"x"), ("w", b"-"), ("h", b"\xff")])],
        "empty": [(b"", good_headers)],
        "not_jpeg": [(b"GIF89a not a jpeg", good_headers), (png.getvalue(), good_headers)],
        "truncated": [(b"\xff\xd8\xff\xe0 truncated", good_headers)],
        "too_large": [
            (b"\xff\xd8" + b"\0" * (4 * 1024 * 1024 - 60 * 1024) + b"\xff\xd9", good_headers)
        ],
        "checksum": [(bytes(flipped), meta.headers(jpeg))],
    }
    for records in corrupt.values():
        for value, headers in records:
            producer.produce(topic, value, key=CAMERA, headers=headers)
    assert producer.flush(10) == 0
    # Bigger than the topic takes: the broker itself refuses it; the producer says so.
    refused: list[object] = []
    producer.produce(
        topic,
        b"\0" * (5 * 1024 * 1024),
        key=CAMERA,
        on_delivery=lambda err, _msg: refused.append(err),
    )
    producer.flush(10)
    assert refused
    assert refused[0] is not None
    after = client.parts_for(2.0)
    client.close()
    assert len(after) >= FPS  # the stream went on
    for reason, records in corrupt.items():

        def counted(reason: str = reason, expected: int = len(records)) -> bool:
            labels = {"topic": topic, "reason": reason}
            return stack.metric("gateway_bad_messages_total", **labels) >= expected

        stack.gateway.wait_for(counted, 10, f"bad records counted as {reason}")


def test_kaf_serves_the_default_camera_as_the_baseline_did(stack: Stack) -> None:
    client = MjpegClient(f"{stack.base}/kaf")
    parts = client.parts_for(1.0)
    client.close()
    assert client.status == 200
    assert {p.headers["X-Camera"] for p in parts} == {CAMERA}


def test_unknown_camera_is_404_and_starts_no_kafka_read(stack: Stack) -> None:
    before = stack.metric(
        "gateway_partition_assignments_total", topic=stack.prefix + "video-frames"
    )
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(f"{stack.base}/stream/nobody", timeout=5)
    assert info.value.code == 404
    assert CAMERA in json.loads(info.value.read())["cameras"]
    after = stack.metric("gateway_partition_assignments_total", topic=stack.prefix + "video-frames")
    assert after == before


def test_snapshot_is_the_newest_frame(stack: Stack) -> None:
    with urllib.request.urlopen(f"{stack.base}/snapshot/{OTHER}.jpg", timeout=10) as response:
        body, headers = response.read(), response.headers
    assert headers["Content-Type"] == "image/jpeg"
    assert time.time() - int(headers["X-Frame-Timestamp"]) / 1e9 < 2.5
    assert Image.open(io.BytesIO(body)).size == (320, 240)


def test_sigterm_closes_open_streams_and_exits_in_the_grace_period(stack: Stack) -> None:
    """Runs last in the module: it stops this mode's gateway."""
    client = MjpegClient(f"{stack.base}/stream/{CAMERA}")
    client.part()
    started = time.monotonic()
    assert stack.gateway.terminate(timeout=15) == 0, stack.gateway.log()
    took = time.monotonic() - started
    assert took < 10, took
    with pytest.raises((EOFError, OSError)):
        client.parts_for(3.0)
    client.close()
