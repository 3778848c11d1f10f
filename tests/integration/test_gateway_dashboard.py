"""The dashboard's Socket.IO side with real processes: event-sim → Kafka → two gateway
replicas in one consumer group → a python-socketio client (not the page's own code)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from rts_common.contracts import TOPICS

from tests.fixtures.kafka import KafkaUnderTest
from tests.fixtures.processes import (
    ServiceGroup,
    ServiceProcess,
    kafka_env,
    start_event_sim,
    start_gateway,
)
from tests.fixtures.socketio import Listener, StalledDashboard

BASELINE_FIELDS = {
    "event_id",
    "user_id",
    "movie_id",
    "event_type",
    "position_seconds",
    "bitrate_kbps",
    "device",
    "ts",
}


Replicas = tuple[list[ServiceProcess], ServiceProcess, str]
GRACEFUL_TIMEOUT = 60


@pytest.fixture(scope="module")
def replicas(kafka: KafkaUnderTest) -> Iterator[Replicas]:
    prefix = f"db{uuid.uuid4().hex[:8]}."
    kafka.create_topics(list(TOPICS), prefix)
    env = kafka_env(
        kafka.bootstrap,
        prefix,
        GATEWAY_GROUP_ID=f"dash-{prefix}",
        GATEWAY_EVENTS_START="earliest",
        GATEWAY_GRACEFUL_TIMEOUT=str(GRACEFUL_TIMEOUT),
    )
    with ServiceGroup(env) as group:
        reps = [start_gateway(group, name=name) for name in ("gateway-a", "gateway-b")]
        for rep in reps:
            rep.wait_ready(timeout=60)
        sim = start_event_sim(group, "--rate", "200", "--users", "2000", "--seed", "11")
        yield reps, sim, prefix


def test_a_separate_socketio_client_receives_new_event_with_the_baseline_fields(
    replicas: Replicas,
) -> None:
    reps, _sim, _prefix = replicas
    listener = Listener(reps[0].url)
    try:
        events = listener.wait("new_event", lambda items: len(items) >= 5, 30)
    finally:
        listener.close()
    for event in events:
        assert set(event) >= BASELINE_FIELDS, event
        assert event["ts"].endswith("Z")
        assert event["event_type"] in {
            "play",
            "pause",
            "stop",
            "seek",
            "buffer_start",
            "buffer_end",
        }


def test_every_replica_delivers_every_partitions_aggregates_to_its_clients(
    replicas: Replicas,
) -> None:
    reps, _sim, prefix = replicas
    topic = prefix + "playback-events"
    # The group spreads the three partitions over the two replicas.
    deadline = time.monotonic() + 30
    owned = [0.0, 0.0]
    while time.monotonic() < deadline:
        owned = [r.metric("gateway_partitions_assigned", topic=topic) for r in reps]
        if sum(owned) == 3 and all(owned):
            break
        time.sleep(0.5)
    assert sum(owned) == 3, owned
    assert all(owned), owned
    listeners = [Listener(r.url) for r in reps]
    try:
        for listener in listeners:
            snapshots = listener.wait(
                "qoe", lambda items: {s["partition"] for s in items} == {0, 1, 2}, 15
            )
            owners = {s["owner"] for s in snapshots}
            assert len(owners) == 2, owners  # both replicas' partitions reach each client
    finally:
        for listener in listeners:
            listener.close()
    published = [r.metric("gateway_broadcast_published_total") for r in reps]
    assert all(p > 0 for p in published), published


def test_a_dashboard_that_stops_reading_costs_the_others_nothing(replicas: Replicas) -> None:
    reps, _sim, _prefix = replicas
    gateway = reps[0]
    dropped_before = gateway.metric("gateway_socketio_messages_dropped_total")
    listeners = [Listener(gateway.url) for _ in range(5)]
    stalled = StalledDashboard(gateway.url)
    try:
        # It falls behind: what waits for it past the bound is dropped, and counted.
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if gateway.metric("gateway_socketio_messages_dropped_total") > dropped_before:
                break
            time.sleep(0.5)
        assert gateway.metric("gateway_socketio_messages_dropped_total") > dropped_before
        assert gateway.metric("gateway_socketio_clients_behind") >= 1
        # What waits for it stays within its bound (64 KiB by default) and a message or
        # two, however long it stays: memory and delay both bounded.
        window_start = time.time()
        backlog = []
        while time.time() < window_start + 8:
            backlog.append(gateway.metric("gateway_socketio_backlog_bytes"))
            time.sleep(0.5)
        assert max(backlog) <= 3 * 64 * 1024, backlog
        # Meanwhile every other dashboard got every event, and none was disconnected.
        time.sleep(3)  # the window's last events on their way
        got = [
            {e["event_id"] for e in listener.get("new_event") if in_window(e, window_start)}
            for listener in listeners
        ]
        every = set().union(*got)
        assert len(every) > 50, len(every)  # 2 replicas x 20 a second for 8 s
        assert all(ids == every for ids in got), [len(every - ids) for ids in got]
        assert all(listener.client.connected for listener in listeners)
    finally:
        stalled.close()
        for listener in listeners:
            listener.close()


def in_window(event: dict[str, str], start: float) -> bool:
    at = datetime.strptime(event["ts"][:19], "%Y-%m-%dT%H:%M:%S").replace(tzinfo=UTC)
    return start + 1 <= at.timestamp() <= start + 8


def test_a_replica_that_leaves_hands_its_partitions_to_the_other(
    replicas: Replicas,
) -> None:
    reps, _sim, prefix = replicas
    topic = prefix + "playback-events"
    started = time.monotonic()
    assert reps[1].terminate() == 0, reps[1].log()
    took = time.monotonic() - started
    # It ends its streams and sockets at once rather than wait for them until gunicorn's
    # graceful timeout. A margin of half that timeout, not a speed target: leaving
    # still means two interpreters tearing down, several seconds on a loaded machine.
    assert took < GRACEFUL_TIMEOUT / 2, took
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if reps[0].metric("gateway_partitions_assigned", topic=topic) == 3:
            break
        time.sleep(0.5)
    assert reps[0].metric("gateway_partitions_assigned", topic=topic) == 3
    assert reps[0].metric("gateway_rebalances_total", kind="assigned") >= 2
    listener = Listener(reps[0].url)
    try:
        listener.wait("qoe", lambda items: {s["partition"] for s in items} == {0, 1, 2}, 15)
        listener.wait("new_event", lambda items: len(items) >= 1, 15)
    finally:
        listener.close()
