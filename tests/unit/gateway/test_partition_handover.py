"""A playback-events partition moving between replicas: checkpoints, dropped records of
partitions given up, each offset and each event_id counted once (no broker: real
confluent-kafka Message objects through the real decode path)."""

from __future__ import annotations

import json
import threading
import time
import types
import zlib
from typing import Any

import pytest
from confluent_kafka import OFFSET_INVALID, KafkaError, Message, TopicPartition
from flask_socketio import SocketIOTestClient
from rts_common.contracts import PLAYBACK_EVENTS, QoeCheckpoint
from rts_eventsim.simulation import SimConfig, Simulator
from rts_gateway.bridge import BadRecords, Batch, ConsumerLoop, Topic
from rts_gateway.bridge.runtime import ThreadingRuntime
from rts_gateway.feed import checkpoints as checkpoints_module
from rts_gateway.feed.checkpoints import Checkpoints
from rts_gateway.feed.qoe import PartitionAggregate, RecentIds
from rts_gateway.metrics import GatewayMetrics
from rts_gateway.service import Gateway

from tests.unit.gateway.conftest import MakeGateway, received
from tests.unit.gateway.helpers import batch_of

START_NS = 1_798_761_600 * 10**9


def simulated(count: int, *, partitions: int = 3, seed: int = 5) -> list[Message]:
    """`count` lifelike events of event-sim, spread over partitions by session."""
    sim = Simulator(SimConfig(seed, 50.0, 300, 40, START_NS))
    offsets = [0] * partitions
    messages = []
    for _ in range(count):
        emitted = sim.next_event()
        partition = zlib.crc32(emitted.key.encode()) % partitions
        messages.append(
            Message(
                topic="playback-events",
                partition=partition,
                offset=offsets[partition],
                key=emitted.key.encode(),
                value=emitted.value,
            )
        )
        offsets[partition] += 1
    return messages


def of_partition(messages: list[Message], partition: int) -> list[Message]:
    return [m for m in messages if m.partition() == partition]


def deliver(gateway: Gateway, messages: list[Message]) -> None:
    gateway.feed.playback.on_events(batch_of(PLAYBACK_EVENTS, messages, gateway.metrics))


def comparable(snapshot: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in snapshot.items() if k not in ("owner", "ts", "since")}


def sample(gateway: Gateway, name: str, **labels: str) -> float:
    return gateway.metrics.registry.get_sample_value(name, labels) or 0.0


def test_a_checkpoint_carries_a_partition_on_exactly_to_its_next_owner(
    make_gateway: MakeGateway,
) -> None:
    messages = of_partition(simulated(3000), 1)
    first, second = messages[: len(messages) // 2], messages[len(messages) // 2 :]
    alone, before, after = make_gateway(), make_gateway(), make_gateway()
    for gateway in (alone, before):
        gateway.feed.playback.partition_assigned(1)
    deliver(alone, messages)
    deliver(before, first)
    checkpoint = before.feed.playback.aggregates[1].checkpoint(START_NS, "before")
    restored = PartitionAggregate.restore(checkpoint, dedupe_window=20_000)
    assert restored.offset == first[-1].offset() + 1
    after.feed.playback.partition_assigned(1, restored, counted_from=restored.offset)
    deliver(after, second)
    now = START_NS + 3600 * 10**9
    expected = alone.feed.playback.aggregates[1].snapshot(now, "x")
    assert expected["devices"]["tv"]["playing"] > 0  # a lifelike state, not an empty one
    carried_on = after.feed.playback.aggregates[1]
    assert carried_on.since_ns == before.feed.playback.aggregates[1].since_ns
    assert comparable(carried_on.snapshot(now, "x")) == comparable(expected)


def test_a_record_of_a_partition_not_owned_never_recreates_its_aggregate(
    gateway: Gateway, socket_client: SocketIOTestClient
) -> None:
    messages = simulated(200)
    gateway.feed.playback.partition_assigned(0)
    deliver(gateway, messages)
    assert set(gateway.feed.playback.aggregates) == {0}
    gateway.feed.playback.tick(START_NS)
    assert {s["partition"] for s in received(socket_client, "qoe")} == {0}
    dropped = len(messages) - len(of_partition(messages, 0))
    assert sample(gateway, "gateway_revoked_records_dropped_total", topic="playback-events") == (
        dropped
    )


def test_each_offset_counts_once(gateway: Gateway) -> None:
    messages = of_partition(simulated(900), 2)
    assert len(messages) > 150
    gateway.feed.playback.partition_assigned(2)
    deliver(gateway, messages[:100])
    deliver(gateway, messages[50:150])  # a re-delivery overlapping what was applied
    aggregate = gateway.feed.playback.aggregates[2]
    assert aggregate.events_seen == 150
    assert aggregate.offset == messages[149].offset() + 1


def test_a_duplicate_event_id_is_dropped_where_it_would_change_a_total(gateway: Gateway) -> None:
    messages = of_partition(simulated(300), 0)
    # A producer that sent its last 20 events again, as new records at new offsets.
    end = messages[-1].offset() + 1
    again = [
        Message(topic="playback-events", partition=0, offset=end + i, key=m.key(), value=m.value())
        for i, m in enumerate(messages[-20:])
    ]
    gateway.feed.playback.partition_assigned(0)
    deliver(gateway, messages + again)
    aggregate = gateway.feed.playback.aggregates[0]
    assert aggregate.events_seen == len(messages)
    assert aggregate.offset == end + 20  # read past, counted once
    assert sample(gateway, "gateway_duplicate_events_total") == 20
    counted = sum(
        sample(gateway, "gateway_playback_events_total", event_type=t, device=d)
        for t in ("play", "pause", "stop", "seek", "buffer_start", "buffer_end")
        for d in ("web", "tv", "mobile")
    )
    assert counted == len(messages)


def test_the_dedupe_window_keeps_the_newest_ids_and_travels_in_the_checkpoint() -> None:
    recent = RecentIds(3)
    assert all(recent.first_time(i) for i in ("a", "b", "c", "d"))
    assert not recent.first_time("d")
    assert recent.first_time("a")  # forgotten: beyond the window
    carried = RecentIds.load(3, recent.dump())
    assert not carried.first_time("d")
    assert not carried.first_time("a")
    assert carried.first_time("b")


def test_records_an_earlier_owner_counted_rebuild_the_state_but_are_not_counted_again(
    make_gateway: MakeGateway,
) -> None:
    gateway = make_gateway(event_sample_rate=1000)
    client = gateway.socketio.test_client(gateway.app)
    messages = of_partition(simulated(600), 1)
    counted_from = messages[100].offset()
    gateway.feed.playback.partition_assigned(1, counted_from=counted_from)
    deliver(gateway, messages)
    assert gateway.feed.playback.aggregates[1].events_seen == len(messages)
    emitted = received(client, "new_event")
    assert len(emitted) == len(messages) - 100
    counted = sum(
        sample(gateway, "gateway_playback_events_total", event_type=t, device=d)
        for t in ("play", "pause", "stop", "seek", "buffer_start", "buffer_end")
        for d in ("web", "tv", "mobile")
    )
    assert counted == len(messages) - 100


def test_a_partition_lost_and_given_back_is_not_counted_twice_by_the_same_process(
    make_gateway: MakeGateway,
) -> None:
    gateway = make_gateway(event_sample_rate=1000)
    messages = of_partition(simulated(300), 1)
    playback = gateway.feed.playback
    playback.partition_assigned(1)
    deliver(gateway, messages[:200])
    # Lost without a commit, then assigned again from the group's older committed offset.
    gateway.feed.release_events([1], "lost")
    playback.partition_assigned(1, counted_from=messages[50].offset())
    deliver(gateway, messages[50:])
    counted = sum(
        sample(gateway, "gateway_playback_events_total", event_type=t, device=d)
        for t in ("play", "pause", "stop", "seek", "buffer_start", "buffer_end")
        for d in ("web", "tv", "mobile")
    )
    assert counted == len(messages)


def test_snapshots_say_how_far_they_count(
    gateway: Gateway, socket_client: SocketIOTestClient
) -> None:
    messages = of_partition(simulated(200), 0)
    gateway.feed.playback.partition_assigned(0)
    deliver(gateway, messages)
    gateway.feed.playback.tick(START_NS)
    (snapshot,) = received(socket_client, "qoe")
    assert snapshot["offset"] == messages[-1].offset() + 1


def test_a_released_partition_is_handed_back_for_its_last_checkpoint(gateway: Gateway) -> None:
    gateway.feed.playback.partition_assigned(0)
    deliver(gateway, of_partition(simulated(100), 0))
    (released,) = gateway.feed.release_events([0, 2], "revoked")
    assert released.partition == 0
    assert gateway.feed.playback.aggregates == {}
    state = json.loads(released.checkpoint(START_NS, "me"))
    assert state["offset"] == released.offset > 0


# -- choosing where a partition starts (the Kafka reads are faked)


class Watermarks:
    """The one call the takeover makes on the group's consumer: the partition's bounds."""

    def __init__(self, low: int, high: int) -> None:
        self.bounds = (low, high)

    def get_watermark_offsets(self, tp: TopicPartition, timeout: float) -> tuple[int, int]:
        return self.bounds


@pytest.fixture
def checkpoints(gateway: Gateway) -> Checkpoints:
    return gateway.feed.checkpoints


def saved(partition: int, offset: int) -> QoeCheckpoint:
    aggregate = PartitionAggregate(partition, START_NS)
    aggregate.offset = offset
    return QoeCheckpoint("g", partition, offset, aggregate.checkpoint(START_NS, "earlier"))


@pytest.mark.parametrize(
    ("stored", "committed", "watermarks", "restored", "start", "counted_from", "problem"),
    [
        # the usual takeover: the newest state, then on from its offset
        (saved(1, 500), 520, (0, 900), True, 500, 520, ""),
        # a new partition, or a new group: counted from the committed offset
        (None, 520, (0, 900), False, OFFSET_INVALID, 520, ""),
        (None, OFFSET_INVALID, (0, 900), False, OFFSET_INVALID, 0, ""),
        # a checkpoint of an earlier incarnation of the topic
        (saved(1, 5000), 520, (0, 900), False, OFFSET_INVALID, 520, "past the partition's end"),
        # records expired between the checkpoint and now: counted as far as possible
        (saved(1, 100), 520, (300, 900), True, 300, 520, "expired"),
        # someone else's state under this partition's key
        (saved(2, 500), 520, (0, 900), False, OFFSET_INVALID, 520, "stored as 1"),
    ],
)
def test_a_partition_starts_from_its_newest_checkpoint_when_it_can(
    checkpoints: Checkpoints,
    monkeypatch: pytest.MonkeyPatch,
    stored: QoeCheckpoint | None,
    committed: int,
    watermarks: tuple[int, int],
    restored: bool,
    start: int,
    counted_from: int,
    problem: str,
) -> None:
    monkeypatch.setattr(checkpoints, "_newest", lambda _reader, _p, _deadline: (stored, ""))
    consumer: Any = Watermarks(*watermarks)
    takeover = checkpoints._take_over(
        consumer, reader=consumer, partition=1, committed=committed, deadline=time.monotonic() + 10
    )
    assert (takeover.restored, takeover.start, takeover.counted_from) == (
        restored,
        start,
        counted_from,
    )
    assert problem in takeover.problem
    assert takeover.aggregate.partition == 1


def test_a_takeover_out_of_time_starts_the_partition_from_its_committed_offset(
    checkpoints: Checkpoints, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The takeover runs in the group's assign callback: a slow Kafka must not keep the
    member out of its group for longer than the takeover's budget."""
    monkeypatch.setattr(checkpoints, "_newest", lambda _reader, _p, _deadline: (saved(1, 500), ""))
    consumer: Any = Watermarks(0, 900)
    takeover = checkpoints._take_over(
        consumer, reader=consumer, partition=1, committed=520, deadline=time.monotonic() - 1
    )
    assert (takeover.restored, takeover.start, takeover.counted_from) == (
        False,
        OFFSET_INVALID,
        520,
    )
    assert takeover.problem == "the takeover ran out of time"


# -- the bridge: a poll that revokes a partition drops the records it fetched for it


class RebalancingConsumer:
    """A consumer whose second fetch runs a rebalance revoking partition 1, the way
    librdkafka runs callbacks inside consume()."""

    def __init__(self, loop: ConsumerLoop[Any], messages: list[Message]) -> None:
        self.loop = loop
        self.messages = messages
        self.callbacks: dict[str, Any] = {}
        self.fetches = 0

    def subscribe(self, topics: list[str], **callbacks: Any) -> None:
        self.callbacks = callbacks

    def poll(self, timeout: float) -> Message | None:
        self.fetches += 1
        if self.fetches > 2:
            self.loop.request_stop()
            return None
        return self.messages[0]

    def consume(self, n: int, timeout: float) -> list[Message]:
        if self.fetches == 2:
            self.callbacks["on_revoke"](self, [TopicPartition("playback-events", 1)])
        return self.messages[1:]


def test_records_fetched_for_a_partition_the_same_poll_revoked_are_never_delivered() -> None:
    runtime = ThreadingRuntime()
    metrics = GatewayMetrics()
    batches: list[Batch[Any]] = []
    done = threading.Event()
    revoked: list[list[int]] = []
    topic = Topic(PLAYBACK_EVENTS, "playback-events")
    loop = ConsumerLoop(
        runtime,
        {"group.id": "g"},
        topic,
        batches.append,
        BadRecords(metrics),
        name="events",
        max_pending_batches=100,
    )
    loop.subscribe(on_revoke=lambda _c, tps: revoked.append([tp.partition for tp in tps]))
    messages = [m for m in simulated(60) if m.partition() in (1, 2)][:10]
    consumer = RebalancingConsumer(loop, messages)
    runtime.start_native_thread(
        lambda: (loop._loop(consumer), runtime.call_soon_threadsafe(done.set)), "fake-poll"
    )  # type: ignore[func-returns-value]
    assert done.wait(5)
    first, second = batches
    assert {r.partition for r in first.records} == {1, 2}  # fetched while still owned
    assert {r.partition for r in second.records} == {2}
    assert revoked == [[1]]
    dropped = sum(1 for m in messages if m.partition() == 1)
    assert (
        metrics.registry.get_sample_value(
            "gateway_revoked_records_dropped_total", {"topic": "playback-events"}
        )
        == dropped
    )


def test_one_checkpoint_a_tick_the_longest_due_first(
    checkpoints: Checkpoints, monkeypatch: pytest.MonkeyPatch
) -> None:
    written: list[int] = []
    monkeypatch.setattr(checkpoints, "_producer", types.SimpleNamespace(poll=lambda _t: 0))
    monkeypatch.setattr(checkpoints, "_produce", lambda _p, agg, _ns: written.append(agg.partition))
    monkeypatch.setattr(checkpoints, "interval", 60.0)
    clock = types.SimpleNamespace(monotonic=lambda: 1000.0, time_ns=lambda: START_NS)
    monkeypatch.setattr(checkpoints_module, "time", clock)
    aggregates = [PartitionAggregate(p, START_NS) for p in range(4)]
    for aggregate in aggregates:
        aggregate.offset = 10
    # 1 was written longest ago, 0 next; 2 has not moved on; 3 was written a moment ago.
    checkpoints._written = {0: (5, 900.0), 1: (5, 500.0), 2: (10, 0.0), 3: (5, 990.0)}
    for _ in range(4):
        checkpoints.write_due(aggregates)
    assert written == [1, 0]


def test_a_failed_commit_is_counted_and_nothing_to_commit_is_not(gateway: Gateway) -> None:
    bridge = gateway.bridge
    bridge._committed("events", KafkaError(KafkaError.REBALANCE_IN_PROGRESS), [])
    bridge._committed("events", KafkaError(KafkaError._NO_OFFSET), [])
    bridge._committed("events", None, [TopicPartition("playback-events", 0, 10)])
    assert (
        sample(
            gateway,
            "gateway_offset_commit_failures_total",
            consumer="events",
            error="REBALANCE_IN_PROGRESS",
        )
        == 1
    )
    assert (
        sum(
            s.value
            for m in gateway.metrics.registry.collect()
            if m.name == "gateway_offset_commit_failures"
            for s in m.samples
            if s.name.endswith("_total")
        )
        == 1
    )
