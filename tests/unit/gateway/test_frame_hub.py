import socket
import time
from collections.abc import Callable
from typing import Any

import pytest
from confluent_kafka import Message
from rts_common.contracts import VIDEO_CAMERAS, VIDEO_FRAMES
from rts_gateway.metrics import GatewayMetrics
from rts_gateway.video.directory import CameraDirectory
from rts_gateway.video.hub import Frame, FrameHub, UnknownCamera, Viewer

from tests.unit.gateway.helpers import (
    JPEG,
    FakeConsumer,
    RecordingLoop,
    batch_of,
    frame_message,
    status_message,
)


def sample(metrics: GatewayMetrics, name: str, **labels: str) -> float:
    value = metrics.registry.get_sample_value(name, labels)
    return value or 0.0


@pytest.fixture
def metrics() -> GatewayMetrics:
    return GatewayMetrics()


@pytest.fixture
def loop() -> RecordingLoop:
    return RecordingLoop()


@pytest.fixture
def hub(metrics: GatewayMetrics, loop: RecordingLoop) -> FrameHub:
    directory = CameraDirectory("video-cameras", metrics, max_age=300)
    statuses = [status_message("front", 0), status_message("back", 0, offset=1),
                status_message("yard", 2, offset=2)]  # fmt: skip
    directory.on_batch(batch_of(VIDEO_CAMERAS, statuses, metrics))
    return FrameHub(
        "video-frames", loop, directory, metrics,  # type: ignore[arg-type]
        start_seconds=1.0, release_after=0.0, stall_timeout=0.05,
    )  # fmt: skip


Deliver = Callable[[list[Message]], None]


@pytest.fixture
def deliver(hub: FrameHub, metrics: GatewayMetrics) -> Deliver:
    """Hand messages to the hub as the frames consumer would."""
    return lambda messages: hub.on_batch(batch_of(VIDEO_FRAMES, messages, metrics))


def frame(seq: int) -> Frame:
    (record,) = batch_of(VIDEO_FRAMES, [frame_message("front", seq)], GatewayMetrics()).records
    return Frame.from_record(record)


def run(loop: RecordingLoop) -> list[tuple[str, list[tuple[int, int]]]]:
    consumer = FakeConsumer()
    for command in loop.commands:
        command(consumer)  # type: ignore[arg-type]
    loop.commands.clear()
    return consumer.calls


def test_unknown_camera_is_refused_without_any_kafka_read(
    hub: FrameHub, loop: RecordingLoop
) -> None:
    with pytest.raises(UnknownCamera):
        hub.open("garage")
    assert loop.commands == []


def test_viewers_of_cameras_on_one_partition_share_one_read(
    hub: FrameHub, loop: RecordingLoop, metrics: GatewayMetrics
) -> None:
    hub.open("front")
    hub.open("front")
    hub.open("back")  # same partition as front
    calls = run(loop)
    assert [c[0] for c in calls] == ["assign"]
    partition, start_ms = calls[0][1][0]
    assert partition == 0
    assert abs(start_ms - (time.time() - 1.0) * 1000) < 2000
    assert sample(metrics, "gateway_partitions_assigned", topic="video-frames") == 1
    assert sample(metrics, "gateway_mjpeg_viewers", camera="front", viewer_kind="browser") == 2
    hub.open("yard")
    assert run(loop)[0][1][0][0] == 2
    assert sample(metrics, "gateway_partition_assignments_total", topic="video-frames") == 2


def test_partition_is_released_only_after_its_last_viewer_leaves(
    hub: FrameHub, loop: RecordingLoop
) -> None:
    first, second = hub.open("front"), hub.open("back")
    run(loop)
    hub.close(first)
    hub.maintain()
    assert run(loop) == []
    hub.close(second)
    hub.maintain()
    assert run(loop) == [("unassign", [(0, -1001)])]


def test_frames_reach_only_their_cameras_viewers_and_only_the_newest_of_a_batch(
    hub: FrameHub, metrics: GatewayMetrics, deliver: Deliver
) -> None:
    front, back = hub.open("front"), hub.open("back")
    deliver([frame_message("front", s) for s in range(5)])
    frame = front.take(0.1, time.sleep)
    assert frame is not None
    assert frame.meta.seq == 4
    assert back.take(0.01, time.sleep) is None
    assert sample(metrics, "gateway_frames_received_total", camera="front") == 5
    # catch-up frames in one batch are not "slow client" skips
    assert (
        sample(metrics, "gateway_frames_skipped_total", camera="front", reason="slow_client") == 0
    )


def test_a_new_viewer_gets_the_newest_frame_at_once(hub: FrameHub, deliver: Deliver) -> None:
    hub.open("front")
    deliver([frame_message("front", 7)])
    late = hub.open("front")
    frame = late.take(0.01, time.sleep)
    assert frame is not None
    assert frame.meta.seq == 7


@pytest.mark.parametrize(
    ("message", "reason"),
    [
        (frame_message("front", 1, value=b"not a jpeg"), "not_jpeg"),
        (frame_message("front", 1, value=JPEG[:-2]), "truncated"),
        (
            frame_message("front", 1, value=b"\xff\xd8" + b"0" * (5 << 20) + b"\xff\xd9"),
            "too_large",
        ),
    ],
)
def test_bad_frames_are_counted_and_skipped(
    hub: FrameHub, metrics: GatewayMetrics, message: Any, reason: str, deliver: Deliver
) -> None:
    viewer = hub.open("front")
    deliver([message, frame_message("front", 2)])
    frame = viewer.take(0.1, time.sleep)
    assert frame is not None
    assert frame.meta.seq == 2
    assert sample(metrics, "gateway_bad_messages_total", topic="video-frames", reason=reason) == 1


def test_records_without_headers_are_counted(
    hub: FrameHub, metrics: GatewayMetrics, deliver: Deliver
) -> None:
    deliver([Message(topic="video-frames", partition=0, offset=1, key=b"front",
                             value=JPEG)])  # fmt: skip
    assert (
        sample(metrics, "gateway_bad_messages_total", topic="video-frames", reason="missing_header")
        == 1
    )


def test_a_stalled_viewer_is_dropped_and_its_connection_shut(
    hub: FrameHub, metrics: GatewayMetrics, deliver: Deliver
) -> None:
    viewer = hub.open("front")
    deliver([frame_message("front", 1)])
    server_side, client_side = socket.socketpair()
    viewer.connection = server_side
    assert viewer.take(0.1, time.sleep) is not None  # handed to the server, never written
    time.sleep(0.1)
    hub.maintain()
    assert viewer.closed
    assert client_side.recv(1) == b""  # the peer sees the connection closed
    assert sample(metrics, "gateway_viewers_dropped_total", reason="stalled") == 1
    assert hub.viewer_count() == 0
    server_side.close()
    client_side.close()


def test_close_all_ends_every_stream(hub: FrameHub) -> None:
    viewers = [hub.open("front"), hub.open("yard")]
    hub.close_all()
    assert all(v.closed for v in viewers)
    assert all(v.take(1.0, time.sleep) is None for v in viewers)


def test_slow_viewer_skips_frames_and_holds_only_the_newest(metrics: GatewayMetrics) -> None:
    viewer = Viewer("front", None, metrics)
    for seq in range(10):
        viewer.offer(frame(seq))
    taken = viewer.take(0.1, time.sleep)
    assert taken is not None
    assert taken.meta.seq == 9
    assert (
        sample(metrics, "gateway_frames_skipped_total", camera="front", reason="slow_client") == 9
    )
    assert viewer.take(0.01, time.sleep) is None


def test_fps_cap_spaces_frames_and_counts_what_it_skips(metrics: GatewayMetrics) -> None:
    viewer = Viewer("front", 10.0, metrics)
    frames = [frame(s) for s in range(3)]
    viewer.offer(frames[0])
    viewer.take(0.1, time.sleep)
    started = time.monotonic()
    viewer.offer(frames[1])
    viewer.offer(frames[2])
    taken = viewer.take(1.0, time.sleep)
    assert taken is not None
    assert taken.meta.seq == 2
    assert time.monotonic() - started >= 0.08
    assert sample(metrics, "gateway_frames_skipped_total", camera="front", reason="fps_cap") == 1


def test_frames_of_a_released_partition_never_reach_later_viewers(
    hub: FrameHub, loop: RecordingLoop, deliver: Deliver
) -> None:
    first = hub.open("front")
    deliver([frame_message("front", 1)])
    hub.close(first)
    hub.maintain()  # released (release_after is 0 here)
    deliver([frame_message("front", 2)])  # was already in flight
    again = hub.open("front")
    assert again.take(0.01, time.sleep) is None
    deliver([frame_message("front", 3)])
    frame = again.take(0.1, time.sleep)
    assert frame is not None
    assert frame.meta.seq == 3
