"""event-sim against the real broker: the real `event-sim` process, every event consumed."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import jsonschema
from confluent_kafka import Consumer, TopicPartition
from rts_common.contracts import PLAYBACK_EVENTS
from rts_common.events import PlaybackEvent, committed_schema
from rts_common.sessions import check_sessions

from tests.fixtures.kafka import KafkaUnderTest
from tests.fixtures.processes import ServiceGroup, ServiceProcess, kafka_env, start_event_sim


def _sim(services: ServiceGroup, kafka: KafkaUnderTest, prefix: str, *flags: str) -> ServiceProcess:
    env = kafka_env(kafka.bootstrap, prefix, LOG_FORMAT="json")
    return start_event_sim(services, *flags, env=env)


def _run(services: ServiceGroup, kafka: KafkaUnderTest, prefix: str, *flags: str) -> ServiceProcess:
    """A finished run (its exit code in `proc.returncode`)."""
    sim = _sim(services, kafka, prefix, *flags)
    sim.wait_exit(120)
    return sim


def _finished(sim: ServiceProcess) -> dict[str, Any]:
    return next(record for record in sim.log_records() if record["msg"] == "finished")


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
    kafka: KafkaUnderTest, topic_prefix: str, services: ServiceGroup
) -> None:
    count = 20_000
    sim = _run(
        services,
        kafka,
        topic_prefix,
        "--count",
        str(count),
        *"--no-realtime --rate 50 --users 2000 --titles 300".split(),
    )
    assert sim.proc.returncode == 0, sim.log()
    finished = _finished(sim)
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
    kafka: KafkaUnderTest, topic_prefix: str, services: ServiceGroup
) -> None:
    flags = (
        *"--count 3000 --no-realtime --seed 20261122 --users 500".split(),
        *"--start-time 2027-01-01T00:00:00Z".split(),
    )
    second_prefix = f"t{uuid.uuid4().hex[:10]}."
    kafka.create_topics([PLAYBACK_EVENTS], second_prefix)
    runs = []
    for prefix in (topic_prefix, second_prefix):
        sim = _run(services, kafka, prefix, *flags)
        assert sim.proc.returncode == 0, sim.log()
        records = _consume_all(kafka, prefix + PLAYBACK_EVENTS.name)
        runs.append(sorted((m.partition(), m.offset(), m.key(), m.value()) for m in records))
    assert len(runs[0]) == 3000
    assert runs[0] == runs[1]


def test_sigterm_flushes_every_queued_event_and_exits_cleanly(
    kafka: KafkaUnderTest, topic_prefix: str, services: ServiceGroup
) -> None:
    sim = _sim(services, kafka, topic_prefix, "--rate", "3000", "--users", "3000")
    sim.wait_ready(timeout=30)
    sim.wait_for(lambda: sim.metric("eventsim_events_total") > 3000, 30, "3000 events delivered")
    assert sim.get("/healthz")[0] == 200
    assert sim.terminate(timeout=15) == 0, sim.log()
    finished = _finished(sim)
    assert finished["sent"] == finished["delivered"] > 3000
    assert finished["unsent"] == 0
    assert len(_consume_all(kafka, topic_prefix + PLAYBACK_EVENTS.name)) == finished["sent"]


def test_a_missing_topic_keeps_it_unready_until_stopped(
    kafka: KafkaUnderTest, services: ServiceGroup
) -> None:
    sim = _sim(services, kafka, f"missing{uuid.uuid4().hex[:8]}.")
    sim.wait_for(lambda: sim.get("/readyz")[0] == 503, 30, "readiness 503")
    assert sim.readiness()["waiting"] == "for the topic's metadata"
    assert sim.terminate(timeout=15) == 0, sim.log()
    assert "waiting for the topic" in sim.log(None)
