from typing import Literal

import pytest
from pydantic import SecretStr
from rts_common.kafka import KafkaSettings
from rts_common.settings import Settings, setting


class DemoSettings(KafkaSettings):
    env_prefix = "DEMO_"
    program = "demo"
    fps: float = setting(15.0, "Frames per second", gt=0, le=120)
    camera_id: str = setting("cam-1", "Camera id", min_length=1)
    mode: Literal["fast", "slow"] = setting("fast", "Mode")
    loop: bool = setting(False, "Loop")


def test_defaults_apply_without_env_or_flags() -> None:
    s = DemoSettings.load([], environ={})
    assert (s.fps, s.camera_id, s.mode, s.loop) == (15.0, "cam-1", "fast", False)
    assert s.kafka_bootstrap == "127.0.0.1:9092"


def test_environment_overrides_defaults_and_flags_override_environment() -> None:
    env = {
        "DEMO_FPS": "10",
        "DEMO_CAMERA_ID": "front",
        "KAFKA_BOOTSTRAP": "k:1",
        "DEMO_LOOP": "true",
    }
    s = DemoSettings.load(["--fps", "25"], environ=env)
    assert s.fps == 25.0
    assert s.camera_id == "front"
    assert s.kafka_bootstrap == "k:1"
    assert s.loop is True
    assert DemoSettings.load(["--no-loop"], environ=env).loop is False


def test_bad_value_exits_with_a_message_naming_flag_and_variable(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        DemoSettings.load(["--fps", "0"], environ={})
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "--fps / DEMO_FPS" in err
    assert "greater than 0" in err


def test_choices_are_checked_by_the_parser(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        DemoSettings.load(["--mode", "medium"], environ={})
    assert "invalid choice" in capsys.readouterr().err


def test_help_lists_every_flag_with_its_environment_variable(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        DemoSettings.load(["--help"], environ={})
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for flag, env in [
        ("--fps", "DEMO_FPS"),
        ("--camera-id", "DEMO_CAMERA_ID"),
        ("--kafka-bootstrap", "KAFKA_BOOTSTRAP"),
    ]:
        assert flag in out
        assert env in out


def test_describe_masks_secrets() -> None:
    s = DemoSettings.load([], environ={"KAFKA_PASSWORD": "hunter2"})
    assert s.kafka_password == SecretStr("hunter2")
    assert "hunter2" not in repr(s.describe())


def test_unknown_fields_are_rejected_at_construction() -> None:
    class Tiny(Settings):
        n: int = setting(1, "n")

    with pytest.raises(ValueError, match="Extra inputs"):
        Tiny.model_validate({"n": 1, "m": 2})
