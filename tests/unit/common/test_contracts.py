import pytest
from rts_common.contracts import (
    FRAME_PAYLOAD_LIMIT,
    GATEWAY_SESSIONS,
    PLAYBACK_EVENTS,
    QOE_CHECKPOINTS,
    TOPICS,
    VIDEO_CAMERAS,
    VIDEO_DETECTIONS,
    VIDEO_FRAMES,
    BadMessage,
    Detection,
    FrameMeta,
    SessionRecord,
    camera_id,
    check_jpeg,
    checkpoint_headers,
    checkpoint_key,
    decode_camera_status,
    decode_frame,
    decode_headers,
    decode_session_record,
    topic,
)


def test_topics_match_the_design_table() -> None:
    names = [t.name for t in TOPICS]
    assert names == [
        "video-frames",
        "video-detections",
        "playback-events",
        "video-cameras",
        "dashboard-broadcast",
        "qoe-checkpoints",
        "dead-letters",
        "gateway-sessions",
    ]
    for spec in TOPICS[:3]:
        assert (spec.partitions, spec.local_partitions) == (6, 3)
    assert VIDEO_CAMERAS.config["cleanup.policy"] == "compact"
    assert VIDEO_FRAMES.config["compression.type"] == "producer"
    assert int(VIDEO_FRAMES.config["max.message.bytes"]) > FRAME_PAYLOAD_LIMIT
    assert int(VIDEO_FRAMES.config["retention.ms"]) <= 60 * 60 * 1000
    assert topic("playback-events") is PLAYBACK_EVENTS
    assert topic("video-detections") is VIDEO_DETECTIONS
    # Sessions last at most 30 days: a sign-in fact outlives every session it can name.
    assert "compact" in GATEWAY_SESSIONS.config["cleanup.policy"]
    assert int(GATEWAY_SESSIONS.config["retention.ms"]) > 30 * 24 * 3600 * 1000
    # The state of events partition p lives in checkpoint partition p.
    assert (QOE_CHECKPOINTS.partitions, QOE_CHECKPOINTS.local_partitions) == (
        PLAYBACK_EVENTS.partitions,
        PLAYBACK_EVENTS.local_partitions,
    )
    assert QOE_CHECKPOINTS.config["cleanup.policy"] == "compact"


def test_checkpoint_records_carry_their_group_partition_and_offset() -> None:
    headers = checkpoint_headers(1234, "gateway-2")
    record = QOE_CHECKPOINTS.decode(checkpoint_key("dash/board", 2), b"{}", headers)
    assert (record.group, record.partition, record.offset) == ("dash/board", 2, 1234)
    assert record.state == b"{}"
    for key, value, hdrs, reason in [
        (None, b"{}", headers, "missing_key"),
        (b"g/2", b"", headers, "empty"),
        (b"g/2", b"{}", [], "missing_header"),
        (b"g/two", b"{}", headers, "bad_key"),
        (b"2", b"{}", headers, "bad_key"),
        (b"g/2", b"{}", [("offset", b"x")], "bad_header"),
    ]:
        with pytest.raises(BadMessage) as info:
            QOE_CHECKPOINTS.decode(key, value, hdrs)
        assert info.value.reason == reason, key


@pytest.mark.parametrize(
    "key",
    [
        b"cam-x\r\nX-Injected: 1",
        "cäm".encode(),
        b"\xff\xfe",
        b"a" * 65,
        b"cam\n",
        b"-cam",
        b"../x",
        b"a b",
    ],
)
def test_camera_ids_that_could_break_a_url_header_or_label_are_bad_records(key: bytes) -> None:
    with pytest.raises(BadMessage) as info:
        camera_id(key)
    assert info.value.reason == "bad_camera_id"
    with pytest.raises(BadMessage):
        decode_frame(key, JPEG, [("seq", b"1"), ("ts", b"1"), ("w", b"1"), ("h", b"1")])


def test_a_camera_status_must_name_the_camera_of_its_key() -> None:
    status = b'{"camera": "cam-b", "ts": 1, "source": "test", "source_up": true, "fps": 1}'
    assert decode_camera_status(b"cam-b", status, None).camera == "cam-b"  # type: ignore[union-attr]
    with pytest.raises(BadMessage) as info:
        decode_camera_status(b"cam-a", status, None)
    assert info.value.reason == "key_mismatch"
    assert decode_camera_status(b"cam-a", None, None) is None  # a tombstone


def test_session_records_are_keyed_by_kind_and_id() -> None:
    record = SessionRecord(kind="session_revoked", id="s1", ts=1, until=2)
    assert record.key == "session_revoked:s1"
    value = record.model_dump_json().encode()
    assert decode_session_record(record.key.encode(), value, None) == record
    assert decode_session_record(b"link_used:n", None, None) is None
    with pytest.raises(BadMessage):
        decode_session_record(b"x", b'{"kind": "other", "id": "x", "ts": 1, "until": 1}', None)


def test_frame_headers_are_ascii_decimal_and_round_trip() -> None:
    meta = FrameMeta("cam-1", 42, 1_700_000_000_123_456_789, 1280, 720)
    headers = meta.headers()
    assert dict(headers) == {
        "seq": b"42",
        "ts": b"1700000000123456789",
        "w": b"1280",
        "h": b"720",
    }
    assert FrameMeta.from_record(b"cam-1", headers) == meta


@pytest.mark.parametrize(
    ("key", "headers", "reason"),
    [
        (None, [("seq", b"1"), ("ts", b"1"), ("w", b"1"), ("h", b"1")], "missing_key"),
        (b"c", [("seq", b"1"), ("ts", b"1"), ("w", b"1")], "missing_header"),
        (b"c", [("seq", b"x"), ("ts", b"1"), ("w", b"1"), ("h", b"1")], "bad_header"),
        (b"c", [("seq", b"1"), ("ts", b"1"), ("w", b"0"), ("h", b"1")], "bad_header"),
        (b"c", None, "missing_header"),
    ],
)
def test_broken_frame_records_name_their_reason(
    key: bytes | None, headers: list[tuple[str, bytes]] | None, reason: str
) -> None:
    with pytest.raises(BadMessage) as info:
        FrameMeta.from_record(key, headers)
    assert info.value.reason == reason


def test_decode_headers_skips_null_values() -> None:
    assert decode_headers([("a", None), ("b", b"2"), ("c", "3")]) == {"b": "2", "c": "3"}


JPEG = b"\xff\xd8" + b"\x00" * 100 + b"\xff\xd9"


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"", "empty"),
        (b"\x89PNG\r\n\x1a\n...", "not_jpeg"),
        (JPEG[:-2], "truncated"),
        (b"\xff\xd8" + b"\x00" * (FRAME_PAYLOAD_LIMIT + 1), "too_large"),
    ],
)
def test_check_jpeg_rejects_what_a_browser_could_not_show(payload: bytes, reason: str) -> None:
    with pytest.raises(BadMessage) as info:
        check_jpeg(payload)
    assert info.value.reason == reason


def test_check_jpeg_accepts_a_complete_image_even_with_padding() -> None:
    assert check_jpeg(JPEG) is JPEG
    assert check_jpeg(JPEG + b"\x00\x00")


def test_detection_json_has_the_contract_fields() -> None:
    det = Detection(camera="cam", seq=1, ts=5, kind="motion", boxes=[(1, 2, 3, 4)], score=0.5)
    parsed = Detection.model_validate_json(det.model_dump_json())
    assert parsed == det
    with pytest.raises(ValueError, match="kind"):
        Detection.model_validate({**det.model_dump(), "kind": "cat"})
