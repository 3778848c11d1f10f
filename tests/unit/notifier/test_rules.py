"""Rules and events: which detections matter, and one message per appearance."""

from __future__ import annotations

import pytest
from rts_common.contracts import Detection
from rts_notifier.rules import RuleError, Tracker, parse_rules
from rts_notifier.settings import NotifierSettings

S = 1_000_000_000


def det(kind: str, t: float, zones: list[str] | None = None, camera: str = "lobby") -> Detection:
    boxes = [] if kind in ("offline", "online") else [(10, 10, 20, 20)]
    return Detection(
        camera=camera,
        seq=int(t * 10),
        ts=int(t * S),
        kind=kind,
        boxes=boxes,
        score=1.0,
        zones=zones or [],
    )


def tracker(rules: str, gap: float = 3.0, per_minute: float = 60.0) -> Tracker:
    return Tracker(parse_rules(rules), gap=gap, gateway_url="http://gw/", max_per_minute=per_minute)


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("lobby=face", "write camera/zone=kind"),
        ("lobby/door=faces", "kinds are motion, face, person, offline (got ['faces'])"),
        ("lobby/front door=face", "'front door' is not a zone name"),
        ("lob by/door=face", "'lob by' is not a camera id"),
    ],
)
def test_a_bad_rule_is_refused_naming_it(text: str, says: str) -> None:
    with pytest.raises(RuleError) as refused:
        parse_rules(text)
    assert says in str(refused.value)
    with pytest.raises(SystemExit):
        NotifierSettings.load(["--rules", text], environ={})


def test_a_face_in_the_zone_is_one_event_until_it_is_gone() -> None:
    t = tracker("*/door=face")
    assert t.on_detection(det("face", 0.5)) == []  # outside the door: not asked for
    [new] = t.on_detection(det("face", 1.0, ["door"]))
    assert new.type == "new"
    assert new.after.entered_zones == ["door"]
    assert new.after.snapshot_url == "http://gw/snapshot/lobby.jpg?at=1970-01-01T00:00:01.000Z"
    assert t.on_detection(det("face", 1.5, ["door"])) == []
    assert t.on_detection(det("face", 2.0, ["door", "hall"])) != []  # entered the hall: update
    assert t.sweep(int(4.0 * S)) == []
    [end] = t.sweep(int(5.5 * S))
    assert end.type == "end"
    assert end.after.end_time == 2.0
    assert end.after.id == new.after.id


def test_motion_only_in_its_zone_and_the_limit_per_camera() -> None:
    t = tracker("*/yard=motion", gap=1.0, per_minute=1)
    assert t.on_detection(det("motion", 0.1)) == []
    assert [m.type for m in t.on_detection(det("motion", 0.2, ["yard"]))] == ["new"]
    # Gone for longer than the gap: the old event ends; a new one exceeds the limit.
    assert [m.type for m in t.on_detection(det("motion", 5.0, ["yard"]))] == ["end"]


def test_a_camera_offline_is_an_event_that_ends_when_it_is_back() -> None:
    t = tracker("lobby/*=offline")
    [new] = t.on_detection(det("offline", 10.0))
    assert (new.type, new.after.label) == ("new", "offline")
    assert t.sweep(int(100 * S)) == []  # however long it is down
    [end] = t.on_detection(det("online", 42.0))
    assert end.type == "end"
    assert end.after.end_time == 42.0
    assert t.on_detection(det("offline", 1.0, camera="parking")) == []  # another camera
