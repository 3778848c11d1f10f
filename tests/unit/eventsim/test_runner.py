"""The run loop without Kafka: limits, pacing, stop, and the accounting of every event."""

from __future__ import annotations

import threading
import time

import pytest
from rts_common.events import EventType, PlaybackEvent, ts_to_ns
from rts_common.tasks import Heartbeat
from rts_eventsim.metrics import EventSimMetrics
from rts_eventsim.runner import Limits, Runner
from rts_eventsim.simulation import SimConfig, Simulator


class ListSink:
    """Delivers every event at once, like a broker that never fails."""

    def __init__(self, refuse_after: int | None = None) -> None:
        self.records: list[tuple[str, bytes]] = []
        self.delivered = 0
        self.refuse_after = refuse_after
        self.heartbeat = Heartbeat("test", max_silence=60.0)

    @property
    def failed(self) -> int:
        return 0

    def send(self, key: str, value: bytes, event_type: EventType, stop: threading.Event) -> bool:
        if self.refuse_after is not None and len(self.records) >= self.refuse_after:
            stop.wait(0.01)  # a full queue that never drains, until the stop comes
            return False
        self.records.append((key, value))
        self.delivered += 1
        return True

    def poll(self) -> None:
        pass

    def queued(self) -> int:
        return 0

    def flush(self, timeout: float) -> int:
        return 0


def run(
    limits: Limits,
    rate: float = 1000.0,
    sink: ListSink | None = None,
    stop: threading.Event | None = None,
) -> tuple[ListSink, Runner]:
    sink = sink or ListSink()
    sim = Simulator(SimConfig(3, rate, 500, 50, 1_798_761_600 * 10**9))
    runner = Runner(sim, sink, EventSimMetrics.create(), limits, stop or threading.Event())
    runner.run()
    return sink, runner


def test_count_stops_after_exactly_that_many_events() -> None:
    sink, runner = run(Limits(count=12_345, realtime=False))
    assert len(sink.records) == runner.sent == 12_345
    PlaybackEvent.model_validate_json(sink.records[-1][1])


def test_duration_is_simulated_seconds_so_an_unpaced_run_sends_rate_times_duration() -> None:
    sink, runner = run(Limits(duration=7.5, realtime=False), rate=400.0)
    assert len(sink.records) == 3000
    assert runner.sim.elapsed_s == 7.5


def test_a_paced_run_sends_the_rate_and_its_metrics_say_so() -> None:
    sink, runner = run(Limits(duration=0.3), rate=2000.0)
    assert len(sink.records) == 600
    metrics = runner.metrics.registry
    assert metrics.get_sample_value("eventsim_target_rate") == 2000.0
    assert metrics.get_sample_value("eventsim_sessions_active") == runner.sim.sessions_active


def test_a_stop_while_waiting_for_the_broker_ends_the_run_with_what_was_sent() -> None:
    stop = threading.Event()
    stop_soon = threading.Timer(0.2, stop.set)
    stop_soon.start()
    sink, runner = run(Limits(realtime=False), sink=ListSink(refuse_after=500), stop=stop)
    assert runner.sent == len(sink.records) == 500


def test_the_first_count_or_duration_wins() -> None:
    sink, _ = run(Limits(count=100, duration=10.0, realtime=False), rate=1000.0)
    assert len(sink.records) == 100
    sink, _ = run(Limits(count=100_000, duration=0.05, realtime=False), rate=1000.0)
    assert len(sink.records) == 50


def test_a_paced_run_without_a_start_time_stamps_events_from_when_its_loop_starts() -> None:
    before = time.time_ns()
    sink, runner = run(Limits(duration=0.05, start_now=True), rate=1000.0)
    first = ts_to_ns(PlaybackEvent.model_validate_json(sink.records[0][1]).ts)
    assert before <= first + 1000 <= time.time_ns() + 1000
    with pytest.raises(RuntimeError, match="origin"):
        runner.sim.set_origin(before)
