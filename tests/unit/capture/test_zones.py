"""Zones and masks: what a polygon may be, which zones a box stands in, what a mask hides."""

from __future__ import annotations

import numpy as np
import pytest
from rts_capture.settings import CaptureSettings
from rts_capture.zones import Masks, ZoneError, parse, zones_of

DOOR = "door=0.6,0 1,0 1,1 0.6,1"


def test_zones_parse_with_their_names_and_points() -> None:
    zones = parse(f"{DOOR}; yard = 0,0.5 0.5,0.5 0.5,1 0,1")
    assert [z.name for z in zones] == ["door", "yard"]
    assert zones[1].points == ((0, 0.5), (0.5, 0.5), (0.5, 1), (0, 1))
    assert parse("") == ()


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("door=0.1,0.2 0.4,0.2 0.4,1.7", "point '0.4,1.7' is outside the frame"),
        ("door=0.1,0.2 0.4,0.2", "at least 3 points, got 2"),
        ("door=0.1,0.2 0.4,x 0.3,0.3", "point '0.4,x' is not x,y"),
        ("door=0,0 1,1 1,0 0,1", "edges cross"),
        ("door=0,0 0.5,0.5 1,1", "enclose no area"),
        (f"{DOOR};{DOOR}", "'door' is defined twice"),
        ("front door=0,0 1,0 1,1", "name 'front door'"),
        ("0,0 1,0 1,1", "write name=x,y"),
    ],
)
def test_a_bad_polygon_is_refused_naming_it(text: str, says: str) -> None:
    with pytest.raises(ZoneError, match=r"door|write name") as refused:
        parse(text)
    assert says in str(refused.value)


def test_capture_refuses_a_bad_zone_at_start_naming_the_setting(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit):
        CaptureSettings.load(["--masks", "clock=0,0 0.3,0 0.3,1.2"], environ={})
    error = capsys.readouterr().err
    assert "--masks / CAPTURE_MASKS" in error
    assert "mask 'clock': point '0.3,1.2' is outside the frame" in error


def test_a_box_is_in_the_zones_its_bottom_centre_stands_in() -> None:
    zones = parse(f"{DOOR};top=0,0 1,0 1,0.5 0,0.5")
    # 640x480: the door is x >= 384, the top half y <= 240.
    assert zones_of(zones, [(500, 300, 40, 100)], 640, 480) == ["door"]
    assert zones_of(zones, [(100, 10, 40, 100)], 640, 480) == ["top"]
    assert zones_of(zones, [(500, 10, 40, 100)], 640, 480) == ["door", "top"]
    assert zones_of(zones, [(100, 300, 40, 100)], 640, 480) == []
    assert zones_of(zones, [], 640, 480) == []


def test_a_mask_blanks_its_region_and_only_it() -> None:
    masks = Masks(parse("clock=0,0 0.5,0 0.5,0.25 0,0.25", "mask"))
    image = np.full((480, 640, 3), 200, np.uint8)
    hidden = masks.apply(image)
    assert hidden[:110, :310].max() == 0
    assert hidden[130:, :].min() == 200
    assert hidden[:, 330:].min() == 200
    assert image.min() == 200  # the frame sent to viewers is untouched
    assert not Masks(())
