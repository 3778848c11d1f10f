import pytest
from rts_common.contracts import (
    FRAME_PAYLOAD_LIMIT,
    PLAYBACK_EVENTS,
    TOPICS,
    VIDEO_CAMERAS,
    VIDEO_DETECTIONS,
    VIDEO_FRAMES,
    BadMessage,
    Detection,
    FrameMeta,
    check_jpeg,
    decode_headers,
    topic,
)


def test_topics_match_the_design_table() -> None:
    names = [t.name for t in TOPICS]
    assert names == [
        "video-frames", "video-detections", "playback-events", "video-cameras",
        "dashboard-broadcast", "dead-letters",
    ]  # fmt: skip
    for spec in TOPICS[:3]:
        assert (spec.partitions, spec.local_partitions) == (6, 3)
    assert VIDEO_CAMERAS.config["cleanup.policy"] == "compact"
    assert VIDEO_FRAMES.config["compression.type"] == "producer"
    assert int(VIDEO_FRAMES.config["max.message.bytes"]) > FRAME_PAYLOAD_LIMIT
    assert int(VIDEO_FRAMES.config["retention.ms"]) <= 60 * 60 * 1000
    assert topic("playback-events") is PLAYBACK_EVENTS
    assert topic("video-detections") is VIDEO_DETECTIONS


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
