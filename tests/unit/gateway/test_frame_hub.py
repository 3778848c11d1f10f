import socket
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from confluent_kafka import Message
from rts_common.contracts import VIDEO_CAMERAS, VIDEO_FRAMES
from rts_gateway.metrics import GatewayMetrics
from rts_gateway.video.directory import CameraDirectory
from rts_gateway.video.live.hub import FrameHub, UnknownCamera, Viewer
from rts_gateway.video.mjpeg import Frame, part

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
    statuses = [
        status_message("front", 0),
        status_message("back", 0, offset=1),
        status_message("yard", 2, offset=2),
    ]
    directory.on_batch(batch_of(VIDEO_CAMERAS, statuses, metrics))
    return FrameHub(
        "video-frames",
        loop,
        directory,
        metrics,  # type: ignore[arg-type]
        start_seconds=1.0,
        release_after=0.0,
        stall_timeout=0.05,
    )


Deliver = Callable[[list[Message]], None]


def flipped(message: Message) -> Message:
    """The same record with one bit of its JPEG flipped (markers intact, CRC stale)."""
    jpeg = bytearray(message.value())
    jpeg[len(jpeg) // 2] ^= 0x10
    return Message(
        topic=message.topic(),
        partition=message.partition(),
        offset=message.offset(),
        key=message.key(),
        value=bytes(jpeg),
        headers=message.headers(),
    )


@pytest.fixture
def deliver(hub: FrameHub, metrics: GatewayMetrics) -> Deliver:
    """Hand messages to the hub as the frames consumer would."""
    return lambda messages: hub.on_batch(batch_of(VIDEO_FRAMES, messages, metrics))


def frame(seq: int) -> Frame:
    (record,) = batch_of(VIDEO_FRAMES, [frame_message("front", seq)], GatewayMetrics()).records
    return Frame.from_record(record)


@pytest.fixture
def consumer() -> FakeConsumer:
    return FakeConsumer()


Runner = Callable[[], list[Any]]


@pytest.fixture
def run(loop: RecordingLoop, consumer: FakeConsumer) -> Runner:
    """Run the commands the hub submitted; the calls they made (since the last run)."""

    def run_commands() -> list[Any]:
        consumer.calls.clear()
        loop.run_commands(consumer)
        return consumer.calls

    return run_commands


def test_unknown_camera_is_refused_without_any_kafka_read(
    hub: FrameHub, loop: RecordingLoop
) -> None:
    with pytest.raises(UnknownCamera):
        hub.open("garage")
    assert loop.commands == []


def test_viewers_of_cameras_on_one_partition_share_one_read(
    hub: FrameHub, run: Runner, metrics: GatewayMetrics
) -> None:
    hub.open("front")
    hub.open("front")
    hub.open("back")  # same partition as front
    calls = run()
    assert [c[0] for c in calls] == ["assign"]
    partition, start_ms = calls[0][1][0]
    assert partition == 0
    assert abs(start_ms - (time.time() - 1.0) * 1000) < 2000
    assert sample(metrics, "gateway_partitions_assigned", topic="video-frames") == 1
    assert sample(metrics, "gateway_mjpeg_viewers", camera="front", viewer_kind="browser") == 2
    hub.open("yard")
    assert run()[0][1][0][0] == 2
    assert sample(metrics, "gateway_partition_assignments_total", topic="video-frames") == 2


def test_partition_is_released_only_after_its_last_viewer_leaves(
    hub: FrameHub, run: Runner
) -> None:
    first, second = hub.open("front"), hub.open("back")
    run()
    hub.close(first)
    hub.maintain()
    assert run() == []
    hub.close(second)
    hub.maintain()
    assert run() == [("unassign", [(0, -1001)])]


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
        (flipped(frame_message("front", 1)), "checksum"),
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
    deliver([Message(topic="video-frames", partition=0, offset=1, key=b"front", value=JPEG)])
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


def test_a_failed_assignment_is_retried_until_the_read_works(
    hub: FrameHub, run: Runner, consumer: FakeConsumer, metrics: GatewayMetrics, deliver: Deliver
) -> None:
    viewer = hub.open("front")
    consumer.broken = True  # the broker does not answer offsets-for-times
    assert run() == []
    assert hub.assignments.state(0) == "waiting"
    assert sample(metrics, "gateway_frame_read_failures_total") == 1
    consumer.broken = False
    hub.maintain()
    assert run() == []  # not before the backoff
    time.sleep(1.1)
    hub.maintain()
    assert [call[0] for call in run()] == ["assign"]
    assert hub.assignments.state(0) == "reading"
    assert sample(metrics, "gateway_frame_read_repositions_total", reason="retry") == 1
    deliver([frame_message("front", 9)])
    frame = viewer.take(0.1, time.sleep)
    assert frame is not None
    assert frame.meta.seq == 9


def test_a_read_that_stopped_delivering_is_moved_to_the_newest_frames(
    hub: FrameHub,
    run: Runner,
    metrics: GatewayMetrics,
    deliver: Deliver,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    hub.open("front")
    run()
    deliver([frame_message("front", 1, ts_ns=time.time_ns() - 10 * 10**9)])
    hub.maintain()
    assert run() == []  # just positioned: give it time
    monkeypatch.setattr("rts_gateway.video.live.assignments.STALE_SECONDS", 0.0)
    hub.maintain()  # the camera's status says it published a frame just now
    assert [call[0] for call in run()] == ["seek"]
    assert sample(metrics, "gateway_frame_read_repositions_total", reason="stalled") == 1
    deliver([frame_message("front", 2)])
    hub.maintain()
    assert run() == []  # delivering again


def test_a_viewer_whose_client_left_before_any_frame_is_let_go(
    metrics: GatewayMetrics, loop: RecordingLoop, run: Runner
) -> None:
    directory = CameraDirectory("video-cameras", metrics, max_age=300)
    directory.on_batch(batch_of(VIDEO_CAMERAS, [status_message("front", 0)], metrics))
    closed: set[int] = set()
    hub = FrameHub(
        "video-frames",
        loop,
        directory,
        metrics,  # type: ignore[arg-type]
        release_after=0.0,
        peer_closed=lambda sock: sock.fileno() in closed,
    )
    server_side, client_side = socket.socketpair()
    viewer = hub.open("front")
    viewer.connection = server_side
    run()
    hub.maintain()
    assert not viewer.closed
    closed.add(server_side.fileno())
    hub.maintain()
    assert viewer.closed
    assert sample(metrics, "gateway_viewers_dropped_total", reason="gone") == 1
    hub.maintain()
    assert run() == [("unassign", [(0, -1001)])]
    server_side.close()
    client_side.close()


def test_a_viewer_of_a_quiet_camera_is_nudged_to_resend_its_last_frame(
    hub: FrameHub, deliver: Deliver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("rts_gateway.video.live.hub.KEEPALIVE_SECONDS", 0.05)
    viewer = hub.open("front")
    deliver([frame_message("front", 1)])
    assert viewer.take(None, time.sleep) is not None
    woke: list[object] = []
    waiter = threading.Thread(target=lambda: woke.append(viewer.take(None, time.sleep)))
    waiter.start()
    time.sleep(0.1)
    hub.maintain()  # the camera said nothing for longer than the keepalive
    waiter.join(2)
    assert woke == [None]  # woken with nothing new: the stream re-sends viewer.last()
    last = viewer.last()
    assert last is not None
    assert last.meta.seq == 1


def test_a_frames_mjpeg_part_is_built_once_for_all_viewers() -> None:
    first = frame(3)
    assert part(first) is part(first)
    assert part(first) is not part(frame(3))  # another frame, even with the same content
