import pytest
from rts_capture.settings import CaptureSettings, SourceSpec


@pytest.mark.parametrize(
    ("text", "kind", "camera"),
    [
        ("test", "test", "test"),
        ("0", "camera", "camera0"),
        ("02", "camera", "camera2"),
        ("rtsp://user:secret@cam.local:554/live/main", "url", "cam.local-live-main"),
        ("videos/Front Door.mp4", "file", "Front-Door"),
    ],
)
def test_source_kind_and_default_camera_id_follow_from_the_source(
    text: str, kind: str, camera: str
) -> None:
    spec = SourceSpec.parse(text)
    assert spec.kind == kind
    assert spec.default_camera_id() == camera


def test_a_url_is_logged_without_its_credentials() -> None:
    spec = SourceSpec.parse("rtsp://user:secret@cam.local:554/live?token=abc")
    assert spec.describe() == "rtsp://cam.local:554/live"


def test_flags_and_capture_environment_variables_configure_the_camera() -> None:
    env = {"CAPTURE_SOURCE": "test", "CAPTURE_FPS": "10", "CAPTURE_OPS_PORT": "9199"}
    s = CaptureSettings.load(["--camera-id", "front", "--no-faces", "--loop"], environ=env)
    assert (s.source_spec.kind, s.camera, s.fps, s.ops_port) == ("test", "front", 10.0, 9199)
    assert (s.faces, s.motion, s.loop) == (False, True, True)


def test_without_a_camera_id_the_source_names_the_camera() -> None:
    assert CaptureSettings.load([], environ={}).camera == "camera0"
    assert CaptureSettings.load(["--source", "test"], environ={}).camera == "test"


def test_a_camera_id_that_is_not_url_safe_is_refused_naming_the_flag(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        CaptureSettings.load(["--camera-id", "front door/1"], environ={})
    assert exit_info.value.code == 2
    assert "--camera-id / CAPTURE_CAMERA_ID" in capsys.readouterr().err


def test_help_documents_the_source_and_its_environment_variable(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit):
        CaptureSettings.load(["--help"], environ={})
    out = capsys.readouterr().out
    for text in (
        *"--source CAPTURE_SOURCE --jpeg-quality --face-every".split(),
        *"--loop CAPTURE_OPS_PORT KAFKA_TOPIC_PREFIX".split(),
    ):
        assert text in out
