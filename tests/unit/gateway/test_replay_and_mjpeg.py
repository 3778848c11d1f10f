import pytest
from rts_common.contracts import FrameMeta
from rts_gateway.video.mjpeg import BOUNDARY, CONTENT_TYPE, Frame, part
from rts_gateway.video.times import BadTime, iso_ms, parse_range, parse_time

NOW = 1_800_000_000.0


@pytest.mark.parametrize(
    ("value", "expected_ms"),
    [
        ("-30s", (NOW - 30) * 1000),
        ("-1500ms", (NOW - 1.5) * 1000),
        ("-2m", (NOW - 120) * 1000),
        ("-1h", (NOW - 3600) * 1000),
        ("-0.5s", (NOW - 0.5) * 1000),
        ("now", NOW * 1000),
        ("2027-01-13T08:00:00Z", 1_799_827_200_000),
        ("2027-01-13T09:00:00+01:00", 1_799_827_200_000),
        ("2027-01-13T09:00:00 01:00", 1_799_827_200_000),  # the + of an unescaped URL
        ("2027-01-13 08:00:00", 1_799_827_200_000),
        ("2027-01-13T08:00:00", 1_799_827_200_000),  # no zone: UTC
        ("2027-01-15T08:00:00.250Z", 1_800_000_000_250),
    ],
)
def test_times_accept_relative_and_iso_forms(value: str, expected_ms: float) -> None:
    assert parse_time("from", value, now=NOW) == int(expected_ms)


@pytest.mark.parametrize("value", ["yesterday", "30s", "-30", "-s", "2027-13-45T00:00:00Z", ""])
def test_unreadable_times_explain_the_accepted_forms(value: str) -> None:
    with pytest.raises(BadTime, match="-30s"):
        parse_time("from", value, now=NOW)


@pytest.mark.parametrize(
    "value",
    [
        "-" + "9" * 400 + "s",  # overflowed a float-to-int conversion once
        "-99999999h",
        "-32d",
        "-745h",
        "-2678401s",
        "0001-01-01T00:00:00Z",
        "9999-12-31T23:59:59Z",
        "2027-01-15T10:00:00Z",  # two hours ahead
        "1970-01-01T00:00:00Z",
        "2027-01-13T08:00:00" + "0" * 100,
    ],
)
def test_times_out_of_bounds_are_refused_whatever_their_digits(value: str) -> None:
    with pytest.raises(BadTime) as info:
        parse_time("at", value, now=NOW)
    assert str(info.value).startswith("at=")
    assert len(str(info.value)) < 200  # the input is not echoed whole


def test_a_range_needs_order_and_at_most_its_length() -> None:
    assert parse_range("-10s", "now", max_seconds=60, now=NOW).seconds == 10
    assert parse_range(None, None, max_seconds=60, default_start_seconds=30, now=NOW).seconds == 30
    for start, end in (("-10s", "-20s"), ("-10s", "-10s"), ("-2m", None), (None, None)):
        with pytest.raises(BadTime):
            parse_range(start, end, max_seconds=60, now=NOW)


def test_iso_ms_round_trips() -> None:
    assert iso_ms(1_799_827_200_123) == "2027-01-13T08:00:00.123+00:00"
    assert iso_ms(None) is None
    assert iso_ms(-(10**20)) is None


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
