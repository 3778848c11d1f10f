import pytest
from rts_common.contracts import FrameMeta
from rts_gateway.video.hub import Frame
from rts_gateway.video.mjpeg import BOUNDARY, CONTENT_TYPE, part
from rts_gateway.video.replay import BadReplayTime, iso_ms, parse_from

NOW = 1_800_000_000.0


@pytest.mark.parametrize(
    ("value", "expected_ms"),
    [
        ("-30s", (NOW - 30) * 1000),
        ("-1500ms", (NOW - 1.5) * 1000),
        ("-2m", (NOW - 120) * 1000),
        ("-1h", (NOW - 3600) * 1000),
        ("-0.5s", (NOW - 0.5) * 1000),
        ("2027-01-13T08:00:00Z", 1_799_827_200_000),
        ("2027-01-13T09:00:00+01:00", 1_799_827_200_000),
        ("2027-01-13T08:00:00", 1_799_827_200_000),  # no zone: UTC
    ],
)
def test_replay_start_accepts_relative_and_iso_times(value: str, expected_ms: float) -> None:
    assert parse_from(value, now=NOW) == int(expected_ms)


@pytest.mark.parametrize("value", ["yesterday", "30s", "-30", "-s", "2027-13-45T00:00:00Z"])
def test_unreadable_replay_times_explain_the_accepted_forms(value: str) -> None:
    with pytest.raises(BadReplayTime, match="-30s"):
        parse_from(value, now=NOW)


def test_iso_ms_round_trips() -> None:
    assert iso_ms(1_799_827_200_123) == "2027-01-13T08:00:00.123+00:00"
    assert iso_ms(None) is None


def test_each_mjpeg_part_has_boundary_length_and_frame_headers() -> None:
    jpeg = b"\xff\xd8" + b"x" * 10 + b"\xff\xd9"
    chunk = part(Frame(FrameMeta("cam", 42, 123456789, 64, 48), jpeg, 0, 0))
    head, _, rest = chunk.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    assert lines[0] == f"--{BOUNDARY}"
    headers = dict(line.split(": ", 1) for line in lines[1:])
    assert headers["Content-Type"] == "image/jpeg"
    assert int(headers["Content-Length"]) == len(jpeg)
    assert (headers["X-Frame-Seq"], headers["X-Frame-Timestamp"]) == ("42", "123456789")
    assert rest == jpeg + b"\r\n"
    assert CONTENT_TYPE.endswith(f"; boundary={BOUNDARY}")
