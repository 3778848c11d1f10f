import pytest
from rts_eventsim.settings import EventSimSettings


def test_defaults_are_a_paced_service_on_its_own_ops_port() -> None:
    s = EventSimSettings.load([], environ={})
    assert (s.rate, s.realtime, s.ops_port, s.compression) == (100.0, True, 9110, "lz4")
    assert s.seed is None
    assert s.count == 0
    assert s.duration == 0


def test_eventsim_variables_and_flags_configure_the_run() -> None:
    env = {
        "EVENTSIM_RATE": "250",
        "EVENTSIM_SEED": "42",
        "EVENTSIM_OPS_PORT": "0",
        "KAFKA_TOPIC_PREFIX": "t.",
    }
    s = EventSimSettings.load(["--no-realtime", "--count", "10"], environ=env)
    assert (s.rate, s.seed, s.ops_port, s.realtime, s.count) == (250.0, 42, 0, False, 10)
    assert s.kafka_topic_prefix == "t."


def test_start_time_must_be_iso_utc_and_gives_the_clock_origin() -> None:
    s = EventSimSettings.load(["--start-time", "2027-01-01T00:00:00Z"], environ={})
    assert s.start_ns() == 1_798_761_600 * 10**9
    with pytest.raises(SystemExit):
        EventSimSettings.load(["--start-time", "yesterday"], environ={})


@pytest.mark.parametrize("flags", [["--rate", "0"], ["--users", "0"], ["--count", "-1"]])
def test_out_of_bounds_values_are_refused(flags: list[str]) -> None:
    with pytest.raises(SystemExit):
        EventSimSettings.load(flags, environ={})


def test_help_lists_every_flag_with_its_variable(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        EventSimSettings.load(["--help"], environ={})
    out = capsys.readouterr().out
    for variable in (
        "EVENTSIM_RATE",
        "EVENTSIM_USERS",
        "EVENTSIM_SEED",
        "EVENTSIM_OPS_PORT",
        "KAFKA_BOOTSTRAP",
        "LOG_FORMAT",
    ):
        assert variable in out
