"""The dashboard's emit paths through Flask-SocketIO's test client (no broker: the
dashboard is fed real confluent-kafka Message objects directly)."""

import io
import json
import time
from typing import Any

from confluent_kafka import Message
from flask_socketio import SocketIOTestClient
from PIL import Image
from rts_common.contracts import (
    PLAYBACK_EVENTS,
    VIDEO_CAMERAS,
    VIDEO_DETECTIONS,
    VIDEO_FRAMES,
    Detection,
)
from rts_common.events import ns_to_ts
from rts_gateway.service import Gateway

from tests.unit.gateway.conftest import MakeGateway, received
from tests.unit.gateway.helpers import batch_of, frame_message, status_message


def playback(seq: int, *, session: str = "s1", partition: int = 0, **fields: Any) -> Message:
    event = {
        "event_id": f"e{seq}",
        "user_id": "user_7",
        "movie_id": "MOV003",
        "event_type": "play",
        "position_seconds": 0,
        "bitrate_kbps": 2400,
        "device": "tv",
        "ts": ns_to_ts(time.time_ns()),
        "session_id": session,
        "seq": seq,
        "startup_ms": 700,
        **fields,
    }
    return Message(
        topic="playback-events",
        partition=partition,
        offset=seq,
        key=session.encode(),
        value=json.dumps(event).encode(),
    )


def events(gateway: Gateway, messages: list[Message]) -> None:
    """Deliver `messages` as the events group would, the replica owning their partitions."""
    playback = gateway.feed.playback
    for partition in {m.partition() for m in messages} - set(playback.aggregates):
        playback.partition_assigned(partition)
    playback.on_events(batch_of(PLAYBACK_EVENTS, messages, gateway.metrics))


def test_a_valid_event_is_emitted_as_new_event_with_the_baseline_fields(
    gateway: Gateway, socket_client: SocketIOTestClient
) -> None:
    events(gateway, [playback(1)])
    (event,) = received(socket_client, "new_event")
    for field in (
        "event_id",
        "user_id",
        "movie_id",
        "event_type",
        "position_seconds",
        "bitrate_kbps",
        "device",
        "ts",
    ):
        assert field in event
    assert event["session_id"] == "s1"
    latency = gateway.metrics.registry.get_sample_value("gateway_event_latency_seconds_count")
    assert latency == 1


def test_invalid_events_are_counted_and_do_not_stop_the_batch(
    gateway: Gateway, socket_client: SocketIOTestClient
) -> None:
    bad = Message(topic="playback-events", partition=0, offset=9, value=b'{"event_type": "x"}')
    not_json = Message(topic="playback-events", partition=0, offset=10, value=b"\x00\x01")
    events(gateway, [bad, not_json, playback(11)])
    assert len(received(socket_client, "new_event")) == 1
    for reason in ("invalid", "not_json"):
        labels = {"topic": "playback-events", "reason": reason}
        assert gateway.metrics.registry.get_sample_value("gateway_bad_messages_total", labels) == 1


def test_emits_beyond_the_sample_rate_only_feed_the_aggregates(
    gateway: Gateway, socket_client: SocketIOTestClient
) -> None:
    events(gateway, [playback(i, session=f"s{i}") for i in range(1, 21)])
    assert len(received(socket_client, "new_event")) == 5  # the bucket holds one second: 5
    registry = gateway.metrics.registry
    assert registry.get_sample_value("gateway_events_sampled_out_total") == 15
    assert (
        registry.get_sample_value(
            "gateway_playback_events_total", {"event_type": "play", "device": "tv"}
        )
        == 20
    )
    assert registry.get_sample_value("gateway_stream_starts_total", {"device": "tv"}) == 20
    # every device's counters exist from the start, so rate() and alerts see zeros
    assert registry.get_sample_value("gateway_stream_starts_total", {"device": "web"}) == 0


def test_qoe_snapshots_are_emitted_per_partition_every_tick(
    gateway: Gateway, socket_client: SocketIOTestClient
) -> None:
    events(gateway, [playback(1, session="a", partition=0), playback(2, session="b", partition=2)])
    socket_client.get_received()
    gateway.feed.playback.tick(time.time_ns())
    snapshots = {s["partition"]: s for s in received(socket_client, "qoe")}
    assert set(snapshots) == {0, 2}
    assert snapshots[0]["devices"]["tv"]["starts"] == 1
    assert snapshots[2]["devices"]["tv"]["playing"] == 1
    assert snapshots[0]["owner"] == gateway.feed.playback.owner


def test_revoked_partitions_are_released_to_the_dashboards(
    gateway: Gateway, socket_client: SocketIOTestClient
) -> None:
    gateway.feed.playback.partition_assigned(1)
    gateway.feed.release_events([1], "revoked")
    owner = gateway.feed.playback.owner
    assert received(socket_client, "qoe_released") == [{"partition": 1, "owner": owner}]


def test_detections_are_relayed_as_they_arrive(
    gateway: Gateway, socket_client: SocketIOTestClient
) -> None:
    det = Detection(
        camera="cam-1",
        seq=3,
        ts=time.time_ns(),
        kind="face",
        boxes=[(10, 20, 30, 40)],
        score=0.9,
        width=640,
        height=480,
    )
    messages = [
        Message(
            topic="video-detections",
            partition=0,
            offset=1,
            key=b"cam-1",
            value=det.model_dump_json().encode(),
        ),
        Message(topic="video-detections", partition=0, offset=2, key=b"cam-1", value=b"[]"),
    ]
    gateway.feed.playback.on_detections(batch_of(VIDEO_DETECTIONS, messages, gateway.metrics))
    (relayed,) = received(socket_client, "detection")
    assert relayed["boxes"] == [[10, 20, 30, 40]]
    assert relayed["kind"] == "face"


def test_connecting_clients_get_the_camera_list(make_gateway: MakeGateway) -> None:
    gateway = make_gateway()
    gateway.video.directory.on_batch(
        batch_of(VIDEO_CAMERAS, [status_message("cam-1", 0)], gateway.metrics)
    )
    client = gateway.socketio.test_client(gateway.app)
    (cameras,) = received(client, "cameras")
    assert [c["camera"] for c in cameras] == ["cam-1"]
    assert gateway.metrics.registry.get_sample_value("gateway_socketio_clients") == 1
    client.disconnect()
    assert gateway.metrics.registry.get_sample_value("gateway_socketio_clients") == 0


def test_wall_subscribers_get_binary_thumbnails(
    gateway: Gateway, socket_client: SocketIOTestClient
) -> None:
    buffer = io.BytesIO()
    Image.new("RGB", (160, 120), (128, 64, 32)).save(buffer, "JPEG")
    jpeg = buffer.getvalue()
    ack = socket_client.emit("wall", {"on": True}, callback=True)
    assert ack == {"wall": True, "cameras": ["front"]}  # the camera the gateway knows
    gateway.video.hub.on_batch(
        batch_of(VIDEO_FRAMES, [frame_message("front", 1, value=jpeg)], gateway.metrics)
    )
    deadline = time.monotonic() + 5
    frames: list[Any] = []
    while not frames and time.monotonic() < deadline:
        frames = received(socket_client, "wall_frame")
        time.sleep(0.05)
    assert frames, "no wall frame arrived"
    frame = frames[0]
    assert isinstance(frame["jpeg"], bytes)
    assert frame["jpeg"].startswith(b"\xff\xd8")
    assert (frame["width"], frame["height"]) == (32, 24)
    socket_client.emit("wall", {"on": False})
    assert gateway.video.wall.watching == []


def detection_message(camera: str, seq: int) -> Message:
    det = Detection(
        camera=camera, seq=seq, ts=time.time_ns(), kind="motion", boxes=[(1, 2, 3, 4)], score=0.5
    )
    return Message(
        topic="video-detections",
        partition=0,
        offset=seq,
        key=camera.encode(),
        value=det.model_dump_json().encode(),
    )


def test_a_client_that_asks_for_batches_gets_events_aggregates_and_detections_in_one_message(
    gateway: Gateway, socket_client: SocketIOTestClient
) -> None:
    batched = gateway.socketio.test_client(gateway.app)
    assert batched.emit("options", {"batch": True}, callback=True) == {"batch": True}
    batched.get_received()
    socket_client.get_received()
    playback_feed = gateway.feed.playback
    events(gateway, [playback(1), playback(2, session="s2", partition=1)])
    playback_feed.on_detections(
        batch_of(VIDEO_DETECTIONS, [detection_message("cam-1", 3)], gateway.metrics)
    )
    playback_feed.tick(time.time_ns())
    playback_feed.flush()
    got = batched.get_received()
    assert [m["name"] for m in got] == ["batch"]  # nothing one by one
    batch = got[0]["args"][0]
    assert [e["event_id"] for e in batch["events"]] == ["e1", "e2"]
    assert [d["kind"] for d in batch["detections"]] == ["motion"]
    assert sorted(s["partition"] for s in batch["qoe"]) == [0, 1]
    # A client that did not ask keeps the baseline's one message per event, aggregate and
    # detection.
    one_by_one = [m["name"] for m in socket_client.get_received()]
    assert sorted(one_by_one) == ["detection", "new_event", "new_event", "qoe", "qoe"]
    playback_feed.flush()  # nothing new: nothing sent
    assert received(batched, "batch") == []
    # Asking again for one by one moves the client back.
    assert batched.emit("options", {"batch": False}, callback=True) == {"batch": False}
    events(gateway, [playback(3)])
    playback_feed.flush()
    assert [m["name"] for m in batched.get_received()] == ["new_event"]


def test_a_batched_client_limited_to_some_cameras_gets_only_their_detections_one_by_one(
    make_gateway: MakeGateway,
) -> None:
    gateway = make_gateway(auth_secret="test-secret-0123456789")
    assert gateway.access.ledger is not None
    gateway.access.ledger.assigned({0: 0})
    auth = gateway.access.auth
    assert auth is not None
    token = auth.session(auth.open_link(auth.login_token(cameras=["cam-1"]))).token
    scoped = gateway.socketio.test_client(gateway.app, headers={"Authorization": f"Bearer {token}"})
    assert scoped.emit("options", {"batch": True}, callback=True) == {"batch": True}
    scoped.get_received()
    playback_feed = gateway.feed.playback
    events(gateway, [playback(1)])
    messages = [detection_message("cam-1", 3), detection_message("cam-2", 4)]
    playback_feed.on_detections(batch_of(VIDEO_DETECTIONS, messages, gateway.metrics))
    playback_feed.flush()
    got = scoped.get_received()
    assert [m["name"] for m in got] == ["detection", "batch"]
    assert got[0]["args"][0]["camera"] == "cam-1"
    assert "detections" not in got[1]["args"][0]
    assert [e["event_id"] for e in got[1]["args"][0]["events"]] == ["e1"]
