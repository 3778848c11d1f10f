"""A consumer loop knows whether it does its job: a group member whether it is in its group,
a direct reader whether it reads what it was assigned (librdkafka's statistics); one that
has not for the liveness time while Kafka answers is a failed part, and a group member
whose client lost its way gets a new client. Kafka's clients are fakes here: the real
broker's side is tests/integration/test_gateway_liveness.py."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from confluent_kafka import TopicPartition
from rts_common.contracts import PLAYBACK_EVENTS, VIDEO_CAMERAS
from rts_common.kafka import KafkaSettings
from rts_devstack import ports
from rts_gateway.bridge import BadRecords, ConsumerLoop, Future, KafkaBridge, Topic
from rts_gateway.bridge import consumer as consumer_module
from rts_gateway.bridge.client_state import read_statistics
from rts_gateway.bridge.runtime import ThreadingRuntime
from rts_gateway.metrics import GatewayMetrics

TOPIC = "playback-events"


def statistics(
    *,
    cgrp: str = "up",
    join: str = "steady",
    partitions: dict[int, str] | None = None,
    broker: str = "UP",
    rxidle_us: int = 2000,
) -> str:
    """librdkafka's statistics JSON, with what client_state.py reads of it."""
    parts: dict[str, Any] = {"-1": {"desired": False, "fetch_state": "none", "leader": -1}}
    for number, fetch_state in (partitions or {}).items():
        parts[str(number)] = {"desired": True, "fetch_state": fetch_state, "leader": 1}
    return json.dumps(
        {
            "brokers": {
                "127.0.0.1:9092/1": {"nodeid": 1, "state": broker, "rxidle": rxidle_us},
                "GroupCoordinator": {"nodeid": -1, "state": "UP", "rxidle": 10},
            },
            "topics": {TOPIC: {"partitions": parts}},
            "cgrp": {"state": cgrp, "join_state": join, "assignment_size": len(partitions or {})},
        }
    )


def test_statistics_tell_a_settled_member_reading_from_a_lost_one() -> None:
    settled = read_statistics(statistics(partitions={0: "active", 1: "active"}))
    assert settled.coordinator_up
    assert settled.reading
    assert settled.answered
    assert settled.assigned == 2

    lost = read_statistics(statistics(cgrp="query-coord", join="wait-incr-unassign-to-complete"))
    assert not lost.coordinator_up
    assert "query-coord" in lost.describe()

    waiting = read_statistics(statistics(partitions={0: "active", 1: "offset-query"}))
    assert not waiting.reading
    assert waiting.unread.startswith(f"{TOPIC}[1]: fetch state offset-query")

    silent = read_statistics(statistics(partitions={0: "active"}, rxidle_us=30_000_000))
    assert not silent.reading
    assert not silent.answered

    down = read_statistics(statistics(partitions={0: "active"}, broker="DOWN"))
    assert not down.reading
    assert "leader 1 DOWN" in down.unread


class FakeConsumer:
    """A confluent-kafka Consumer as the loop uses it. `behaviours` (class-wide, in order
    of construction) say what each new client does once subscribed."""

    made: list[FakeConsumer] = []
    behaviours: list[str] = []

    def __init__(self, config: dict[str, Any]) -> None:
        self._stats: Callable[[str], None] = config["stats_cb"]
        self.behaviour = self.behaviours[len(self.made)] if self.behaviours else "joins"
        self.callbacks: dict[str, Any] = {}
        self.closed = False
        self.member: str | None = None
        self.assigned: list[int] = []
        self.made.append(self)

    def subscribe(self, topics: list[str], **callbacks: Any) -> None:
        self.callbacks = callbacks

    def poll(self, timeout: float) -> None:
        time.sleep(min(timeout, 0.02))
        if self.callbacks and self.behaviour == "joins" and self.member is None:
            self.member = f"member-{len(self.made)}"
            self.callbacks["on_assign"](self, [TopicPartition(TOPIC, p) for p in (0, 1, 2)])
        if self.behaviour == "lost":  # librdkafka 2.16 after a metadata answer with no broker
            self._stats(statistics(cgrp="query-coord", join="wait-incr-unassign-to-complete"))
        elif self.behaviour == "held":  # another member blocks the join
            self._stats(statistics(join="init"))
        else:
            self._stats(statistics(partitions=dict.fromkeys(self.assigned, "active")))

    def consume(self, num: int, timeout: float) -> list[Any]:
        return []

    def memberid(self) -> str | None:
        return self.member

    def incremental_assign(self, partitions: list[TopicPartition]) -> None:
        self.assigned += [tp.partition for tp in partitions]

    def assignment(self) -> list[TopicPartition]:
        return [TopicPartition(TOPIC, p) for p in self.assigned]

    def close(self) -> None:
        self.closed = True


@pytest.fixture
def fake_clients(monkeypatch: pytest.MonkeyPatch) -> type[FakeConsumer]:
    FakeConsumer.made, FakeConsumer.behaviours = [], []
    monkeypatch.setattr(consumer_module, "Consumer", FakeConsumer)
    return FakeConsumer


def group_loop(kafka_since: Callable[[], float | None], liveness: float = 1.5) -> ConsumerLoop[Any]:
    return ConsumerLoop(
        ThreadingRuntime(),
        {"group.id": "g"},
        Topic(PLAYBACK_EVENTS, TOPIC),
        lambda _batch: None,
        BadRecords(GatewayMetrics()),
        name="events",
        liveness_seconds=liveness,
        kafka_since=kafka_since,
    )


def wait_until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


def test_a_member_whose_client_finds_no_coordinator_gets_a_new_client_and_rejoins(
    fake_clients: type[FakeConsumer],
) -> None:
    fake_clients.behaviours = ["lost", "joins"]
    assigned: list[list[int]] = []
    loop = group_loop(kafka_since=lambda: 0.0)
    loop.start()
    loop.subscribe(on_assign=lambda _c, tps: assigned.append([tp.partition for tp in tps]))
    try:
        wait_until(lambda: loop.in_group is True)
        first, _second = fake_clients.made
        wait_until(lambda: first.closed)  # closed on a thread of its own
        assert loop.renewals == 1
        assert assigned == [[0, 1, 2]]
        assert loop.problem(time.monotonic()) is None
    finally:
        loop.stop(5)


def test_a_member_is_not_failed_nor_renewed_while_kafka_does_not_answer(
    fake_clients: type[FakeConsumer],
) -> None:
    fake_clients.behaviours = ["lost"]
    loop = group_loop(kafka_since=lambda: None)
    loop.start()
    loop.subscribe()
    try:
        wait_until(lambda: loop.state is not None)
        time.sleep(2.0)  # past the liveness time (1.5 s): an outage is not a failure
        assert loop.stalled_seconds(time.monotonic()) == 0
        assert loop.problem(time.monotonic()) is None
        assert loop.renewals == 0
        assert loop.in_group is False
    finally:
        loop.stop(5)


def test_a_member_held_outside_its_group_fails_liveness_and_says_why(
    fake_clients: type[FakeConsumer],
) -> None:
    fake_clients.behaviours = ["held"]
    loop = group_loop(kafka_since=lambda: 0.0)
    loop.start()
    loop.subscribe()
    try:
        wait_until(lambda: loop.problem(time.monotonic()) is not None)
        problem = loop.problem(time.monotonic())
        assert problem is not None
        assert problem.startswith("outside its group g for ")
        assert "join state init" in problem
        # Its client finds the coordinator: a new client would not help, so none is made.
        assert loop.renewals == 0
    finally:
        loop.stop(5)


def test_a_rebalance_callback_that_does_not_return_keeps_the_member_outside(
    fake_clients: type[FakeConsumer],
) -> None:
    release = threading.Event()
    loop = group_loop(kafka_since=lambda: 0.0)
    loop.start()

    def stuck(_consumer: object, _partitions: list[TopicPartition]) -> None:
        release.wait(10)

    loop.subscribe(on_assign=stuck)
    try:
        wait_until(lambda: loop.problem(time.monotonic()) is not None)
        assert "in a rebalance callback" in (loop.problem(time.monotonic()) or "")
        release.set()
        wait_until(lambda: loop.in_group is True)
        assert loop.problem(time.monotonic()) is None
    finally:
        release.set()
        loop.stop(5)


def test_liveness_counts_only_the_time_kafka_has_answered() -> None:
    back = [time.monotonic()]
    loop = group_loop(kafka_since=lambda: back[0], liveness=30)
    loop._started = True
    loop._beat = back[0] + 31
    loop._subscription = {}
    loop._outside_since = back[0] - 100  # outside since long before the outage ended
    assert loop.stalled_seconds(back[0] + 5) == pytest.approx(5)
    assert loop.problem(back[0] + 5) is None
    assert (loop.problem(back[0] + 31) or "").startswith("outside its group g for 31s")


def test_a_direct_reader_not_reading_its_assignment_fails_liveness() -> None:
    loop = ConsumerLoop(
        ThreadingRuntime(),
        {"group.id": "direct"},
        Topic(VIDEO_CAMERAS, "video-cameras"),
        lambda _batch: None,
        BadRecords(GatewayMetrics()),
        name="directory",
        liveness_seconds=5,
        kafka_since=lambda: 0.0,
        expect_assignment=True,
    )
    loop._started = True
    loop._beat = now = time.monotonic()
    loop._observe(loop._generation, statistics(partitions={0: "active"}))
    assert loop.problem(now + 30) is None
    loop._observe(loop._generation, statistics(partitions={0: "offset-query"}))
    loop._beat = time.monotonic()
    problem = loop.problem(time.monotonic() + 6) or ""
    assert problem.startswith("not reading video-cameras for ")
    assert f"{TOPIC}[0]: fetch state offset-query" in problem
    # Nothing assigned to a reader that should read: not reading either.
    loop._observe(loop._generation, statistics())
    assert "not reading" in (loop.problem(time.monotonic() + 6) or "")
    # Statistics of a client the loop replaced say nothing of the current one.
    loop._observe(loop._generation - 1, statistics(partitions={0: "active"}))
    assert loop.problem(time.monotonic() + 6) is not None


def test_a_reader_is_assigned_again_until_kafka_answers(monkeypatch: pytest.MonkeyPatch) -> None:
    """A gateway started while Kafka does not answer must still read the camera directory,
    the sign-in ledger, the broadcast channel once it does."""
    loop = group_loop(kafka_since=lambda: 0.0)
    answers: list[BaseException | dict[int, int]] = [
        RuntimeError("Failed to get metadata: Local: Broker transport failure"),
        RuntimeError("Failed to get metadata: Local: Timed out"),
        {0: 0},
    ]
    waits: list[float] = []

    def submit(_command: object) -> Future[dict[int, int]]:
        future: Future[dict[int, int]] = Future()
        answer = answers.pop(0)
        if isinstance(answer, BaseException):
            future.resolve(None, answer)
        else:
            future.resolve(answer, None)
        return future

    monkeypatch.setattr(loop, "submit", submit)
    monkeypatch.setattr(loop._runtime, "sleep", waits.append)
    assigned: list[dict[int, int]] = []
    loop._assign_until_done(lambda _consumer: {}, assigned.append, "the ledger")
    assert assigned == [{0: 0}]
    assert waits == [1.0, 2.0]  # backing off between attempts


def test_librdkafka_logs_of_clients_polled_on_native_threads_are_written_in_the_app_context() -> (
    None
):
    """Under eventlet, logging's locks are green: a native thread that logs while a green
    thread holds one waits forever (and holds every later log line up)."""
    reserved = ports.reserve(1)  # nothing listens there: librdkafka logs its failed connects
    port = reserved[0]
    runtime = ThreadingRuntime()
    bridge = KafkaBridge(
        KafkaSettings(kafka_bootstrap=f"127.0.0.1:{port}"), runtime, GatewayMetrics()
    )
    threads: list[str] = []

    class Record(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            threads.append(threading.current_thread().name)

    handler = Record()
    logging.getLogger("librdkafka").addHandler(handler)
    done = threading.Event()

    def poll() -> None:
        consumer = bridge.plain_consumer("reader")
        consumer.assign([TopicPartition(TOPIC, 0)])
        producer = bridge.producer("writer")
        producer.produce(TOPIC, b"x")
        deadline = time.monotonic() + 10
        while not threads and time.monotonic() < deadline:
            consumer.poll(0.1)
            producer.flush(0.1)
        consumer.close()
        done.set()

    try:
        threading.Thread(target=poll, name="native-poller", daemon=True).start()
        assert done.wait(30)
        wait_until(lambda: bool(threads))
        assert set(threads) == {"runtime-dispatch"}
    finally:
        logging.getLogger("librdkafka").removeHandler(handler)
        reserved.release()
