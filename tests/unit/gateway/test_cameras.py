import time

from confluent_kafka import Message
from rts_common.contracts import VIDEO_CAMERAS
from rts_gateway.metrics import GatewayMetrics
from rts_gateway.video.directory import CameraDirectory

from tests.unit.gateway.helpers import batch_of, status_message


def feed(directory: CameraDirectory, metrics: GatewayMetrics, messages: list[Message]) -> None:
    directory.on_batch(batch_of(VIDEO_CAMERAS, messages, metrics))


def test_directory_keeps_the_newest_status_per_camera_and_lists_recent_ones() -> None:
    metrics = GatewayMetrics()
    directory = CameraDirectory("video-cameras", metrics, max_age=300)
    feed(
        directory,
        metrics,
        [
            status_message("b", 1),
            status_message("a", 2, offset=1),
            status_message("b", 0, offset=2),
        ],
    )
    status = directory.get("b")
    assert status is not None
    assert status.partition == 0
    assert [v.status.camera for v in directory.recent()] == ["a", "b"]
    assert directory.first() == "a"
    assert directory.recent(now=time.time() + 301) == []


def test_directory_is_caught_up_once_it_read_to_the_starting_end() -> None:
    metrics = GatewayMetrics()
    directory = CameraDirectory("video-cameras", metrics, max_age=300)
    assert not directory.caught_up
    directory.assigned({0: 3})
    feed(directory, metrics, [status_message("a", offset=1)])
    assert not directory.caught_up
    feed(directory, metrics, [status_message("a", offset=2)])
    assert directory.caught_up
    empty = CameraDirectory("video-cameras", GatewayMetrics(), max_age=300)
    empty.assigned({0: 0})
    assert empty.caught_up


def test_tombstones_remove_cameras_and_invalid_statuses_are_counted() -> None:
    metrics = GatewayMetrics()
    directory = CameraDirectory("video-cameras", metrics, max_age=300)
    feed(
        directory,
        metrics,
        [
            status_message("a"),
            Message(topic="video-cameras", partition=0, offset=1, key=b"a", value=None),
            Message(topic="video-cameras", partition=0, offset=2, key=b"x", value=b"{not json"),
        ],
    )
    assert directory.get("a") is None
    assert (
        metrics.registry.get_sample_value(
            "gateway_bad_messages_total", {"topic": "video-cameras", "reason": "not_json"}
        )
        == 1
    )
