"""event-sim against the real broker: the real `event-sim` process, every event consumed."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import jsonschema
from confluent_kafka import Consumer, TopicPartition
from rts_common.contracts import PLAYBACK_EVENTS
from rts_common.events import PlaybackEvent, committed_schema
from rts_common.sessions import check_sessions
from rts_devstack.broker import free_ports

from tests.fixtures.http import get as _get
from tests.fixtures.kafka import KafkaUnderTest

EVENT_SIM = str(Path(sys.executable).parent / "event-sim")


def _env(kafka: KafkaUnderTest, prefix: str, ops_port: int = 0) -> dict[str, str]:
    return {
        **os.environ,
        "KAFKA_BOOTSTRAP": kafka.bootstrap,
        "KAFKA_TOPIC_PREFIX": prefix,
        "EVENTSIM_OPS_PORT": str(ops_port),
        "LOG_FORMAT": "json",
    }


def _run(kafka: KafkaUnderTest, prefix: str, *flags: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [EVENT_SIM, *flags], env=_env(kafka, prefix), capture_output=True, text=True,
        timeout=120, check=False,
    )  # fmt: skip


def _finished(stderr: str) -> dict[str, Any]:
    lines = [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]
    return next(line for line in lines if line["msg"] == "finished")


def _consume_all(kafka: KafkaUnderTest, topic: str) -> list[Any]:
    """Every record of the topic, read up to the end offsets (partition by partition order)."""
    consumer = Consumer(
        kafka.settings().client_config("test-eventsim")
        | {"group.id": f"test-{uuid.uuid4()}", "enable.auto.commit": False}
    )
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        ends = {}
        for p in partitions:
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
            if high > low:
                ends[p] = high
        consumer.assign([TopicPartition(topic, p, 0) for p in ends])
        records: list[Any] = []
        deadline = time.monotonic() + 60
        done: set[int] = set()
        while len(done) < len(ends) and time.monotonic() < deadline:
            for msg in consumer.consume(10_000, timeout=1.0):
                assert msg.error() is None, msg.error()
                records.append(msg)
                if msg.offset() + 1 >= ends[msg.partition()]:
                    done.add(msg.partition())
        return records
    finally:
        consumer.close()


def test_every_event_of_a_counted_run_arrives_valid_keyed_and_in_session_order(
    kafka: KafkaUnderTest, topic_prefix: str
) -> None:
    count = 20_000
    result = _run(kafka, topic_prefix, "--count", str(count), "--no-realtime", "--rate", "50",
                  "--users", "2000", "--titles", "300")  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    finished = _finished(result.stderr)
    assert (finished["sent"], finished["delivered"], finished["failed"]) == (count, count, 0)

    records = _consume_all(kafka, topic_prefix + PLAYBACK_EVENTS.name)
    assert len(records) == count
    validator = jsonschema.Draft202012Validator(committed_schema())
    events = []
    partition_of: dict[str, int] = {}
    for msg in records:
        raw = json.loads(msg.value())
        validator.validate(raw)
        event = PlaybackEvent.model_validate(raw)
        assert msg.key().decode() == event.session_id
        assert partition_of.setdefault(event.session_id, msg.partition()) == msg.partition()
        events.append(event)
    assert len({e.event_id for e in events}) == count
    assert len(set(partition_of.values())) == PLAYBACK_EVENTS.local_partitions
    # Records are in partition order here, so this checks each session's events arrived
    # in order (seq 1, 2, 3... and the whole session contract) within its partition.
    assert check_sessions(events) == {}


def test_the_same_seed_and_start_time_give_the_same_records(
    kafka: KafkaUnderTest, topic_prefix: str
) -> None:
    flags = ("--count", "3000", "--no-realtime", "--seed", "20261122", "--users", "500",
             "--start-time", "2027-01-01T00:00:00Z")  # fmt: skip
    second_prefix = f"t{uuid.uuid4().hex[:10]}."
    kafka.create_topics([PLAYBACK_EVENTS], second_prefix)
    runs = []
    for prefix in (topic_prefix, second_prefix):
        assert _run(kafka, prefix, *flags).returncode == 0
        records = _consume_all(kafka, prefix + PLAYBACK_EVENTS.name)
        runs.append(sorted((m.partition(), m.offset(), m.key(), m.value()) for m in records))
    assert len(runs[0]) == 3000
    assert runs[0] == runs[1]


def _delivered(metrics: str) -> float:
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in metrics.splitlines()
        if line.startswith("eventsim_events_total{")
    )


@contextlib.contextmanager
def _service(
    kafka: KafkaUnderTest, prefix: str, *flags: str
) -> Iterator[tuple[subprocess.Popen[str], str]]:
    """A running event-sim and the base URL of its ops endpoints; killed if still running."""
    port = free_ports(1)[0]
    proc = subprocess.Popen(
        [EVENT_SIM, *flags], env=_env(kafka, prefix, port), stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        yield proc, f"http://127.0.0.1:{port}"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


def _wait_for(probe: Callable[[], bool], timeout: float = 30.0) -> bool:
    """Poll until `probe` is true (connection errors count as not yet)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if probe():
                return True
        except OSError:
            pass
        time.sleep(0.2)
    return False


def _sigterm(proc: subprocess.Popen[str]) -> str:
    proc.send_signal(signal.SIGTERM)
    return proc.communicate(timeout=15)[1]


def test_sigterm_flushes_every_queued_event_and_exits_cleanly(
    kafka: KafkaUnderTest, topic_prefix: str
) -> None:
    with _service(kafka, topic_prefix, "--rate", "3000", "--users", "3000") as (proc, base):
        assert _wait_for(lambda: _get(base + "/readyz")[0] == 200)
        assert _wait_for(lambda: _delivered(_get(base + "/metrics")[1]) > 3000)
        assert _get(base + "/healthz")[0] == 200
        stderr = _sigterm(proc)
    assert proc.returncode == 0, stderr[-3000:]
    finished = _finished(stderr)
    assert finished["sent"] == finished["delivered"] > 3000
    assert finished["unsent"] == 0
    assert len(_consume_all(kafka, topic_prefix + PLAYBACK_EVENTS.name)) == finished["sent"]


def test_a_missing_topic_keeps_it_unready_until_stopped(kafka: KafkaUnderTest) -> None:
    with _service(kafka, f"missing{uuid.uuid4().hex[:8]}.") as (proc, base):
        assert _wait_for(lambda: _get(base + "/readyz")[0] == 503)
        assert json.loads(_get(base + "/readyz")[1])["waiting"] == "for the topic's metadata"
        stderr = _sigterm(proc)
    assert proc.returncode == 0
    assert "waiting for the topic" in stderr
