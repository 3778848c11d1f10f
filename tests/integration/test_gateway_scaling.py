"""Scaling the gateway as a user does, with real processes: replicas under gunicorn behind
Debian's nginx (configured as `make run GATEWAYS=N` configures it), the real broker,
event-sim with `--count`. The dashboard's numbers are checked against the topic itself:
every `qoe` snapshot must equal what the partition's records up to its offset say."""

from __future__ import annotations

import collections
import itertools
import json
import threading
import time
import urllib.request
import uuid
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import requests
import socketio
from confluent_kafka import Consumer, Producer, TopicPartition
from rts_common.contracts import PLAYBACK_EVENTS, TOPICS
from rts_devstack import launch
from rts_devstack.fleet import Fleet as DevstackFleet
from rts_devstack.launch import Launch
from rts_devstack.proxy import AFFINITY_COOKIE, REPLICA_HEADER, Proxy
from rts_gateway.bridge import KafkaBridge
from rts_gateway.bridge.runtime import ThreadingRuntime
from rts_gateway.feed.checkpoints import Checkpoints
from rts_gateway.feed.qoe import PartitionAggregate
from rts_gateway.metrics import GatewayMetrics
from rts_gateway.settings import GatewaySettings

from tests.fixtures.kafka import KafkaUnderTest
from tests.fixtures.processes import (
    ServiceGroup,
    ServiceProcess,
    kafka_env,
    start_capture,
    start_event_sim,
)

EVENT_TYPES = ("play", "pause", "stop", "seek", "buffer_start", "buffer_end")
ACTIVE = ("playing", "paused", "buffering", "seeking")
# What a session is doing after its last event (a stop ends it): an oracle written apart
# from the gateway's own state machine.
STATE_AFTER = {
    "play": "playing",
    "buffer_end": "playing",
    "pause": "paused",
    "seek": "seeking",
    "buffer_start": "buffering",
}
EVENTS_PARTITIONS = PLAYBACK_EVENTS.local_partitions
PART = b"Content-Type: image/jpeg"


# -- the stack: replicas behind nginx


class Fleet(DevstackFleet):
    """The devstack's Fleet (what `make scale` drives) on the test's topics: topic names
    are given without the test's prefix, and a replica stopped must exit cleanly."""

    def __init__(self, group: ServiceGroup, env: dict[str, str], prefix: str, home: Path) -> None:
        def replica(name: str) -> Launch:
            return launch.gateway(port=group.port(), ops_port=group.port(), replica=name, env=env)

        super().__init__(group.start, Proxy(group.port(), home), replica)
        self.env, self.prefix = env, prefix

    @property
    def running(self) -> dict[str, ServiceProcess]:
        return self.replicas

    def topic(self, name: str) -> str:
        return self.prefix + name

    def owned(self, topic: str) -> dict[str, float]:
        return super().owned(self.topic(topic))

    def stop(self, *names: str, timeout: float = 40.0) -> dict[str, int]:
        codes = super().stop(*names, timeout=timeout)
        assert codes == dict.fromkeys(names, 0), codes
        return codes


def make_fleet(
    kafka: KafkaUnderTest, group: ServiceGroup, tmp_path: Path, *, partitions: int | None = None
) -> Fleet:
    prefix = f"sc{uuid.uuid4().hex[:8]}."
    specs = [replace(s, local_partitions=partitions) if partitions else s for s in TOPICS]
    kafka.create_topics(specs, prefix)
    env = kafka_env(
        kafka.bootstrap,
        prefix,
        GATEWAY_GROUP_ID=f"scale-{prefix}",
        GATEWAY_EVENTS_START="earliest",
        GATEWAY_RELEASE_AFTER_SECONDS="1",
    )
    return Fleet(group, env, prefix, tmp_path / "nginx")


# -- what browsers see


class Browser:
    """A python-socketio client that keeps its cookies (as a browser does) and records
    what it receives, with the time."""

    def __init__(self, url: str, *, replica: str = "", reconnection: bool = False) -> None:
        self.http = requests.Session()
        if replica:
            self.http.cookies.set(AFFINITY_COOKIE, replica, domain="127.0.0.1", path="/")
        self.client = socketio.Client(
            reconnection=reconnection,
            reconnection_delay=0.5,
            reconnection_delay_max=1,
            http_session=self.http,
        )
        self.received: dict[str, list[tuple[float, Any]]] = collections.defaultdict(list)
        self.connects = 0
        self.lock = threading.Lock()
        self.client.on("connect", self._connected)
        for name in ("new_event", "qoe", "detection"):
            self.client.on(name, self._recorder(name))
        self.client.connect(url, wait_timeout=20)

    @property
    def replica(self) -> str | None:
        """The replica nginx pins this browser to (its affinity cookie)."""
        return self.http.cookies.get(AFFINITY_COOKIE)

    def _connected(self) -> None:
        self.connects += 1

    def _recorder(self, name: str) -> Any:
        def record(data: Any) -> None:
            with self.lock:
                self.received[name].append((time.monotonic(), data))

        return record

    def get(self, name: str, since: float = 0.0) -> list[Any]:
        with self.lock:
            return [data for at, data in self.received[name] if at >= since]

    def times(self, name: str) -> list[float]:
        with self.lock:
            return [at for at, _ in self.received[name]]

    def wait(self, name: str, count: int, timeout: float, since: float = 0.0) -> list[Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            items = self.get(name, since)
            if len(items) >= count:
                return items
            time.sleep(0.1)
        raise AssertionError(f"{name}: {len(self.get(name, since))} of {count} in {timeout}s")

    def close(self) -> None:
        self.client.disconnect()


# -- the truth: the topic's records


class Topic:
    """Every record of the events topic, read back by a plain consumer."""

    def __init__(self, kafka: KafkaUnderTest, name: str) -> None:
        self.kafka, self.name = kafka, name
        self.records: dict[int, list[dict[str, Any]]] = {}

    def read(self) -> dict[int, int]:
        """Read everything; returns each partition's end offset."""
        consumer = Consumer(
            self.kafka.config(
                **{"group.id": f"oracle-{uuid.uuid4().hex[:6]}", "enable.auto.commit": False}
            )
        )
        try:
            ends = {}
            for p in range(EVENTS_PARTITIONS):
                ends[p] = consumer.get_watermark_offsets(TopicPartition(self.name, p), 10)[1]
            consumer.assign([TopicPartition(self.name, p, 0) for p in ends])
            records: dict[int, list[dict[str, Any]]] = {p: [] for p in ends}
            deadline = time.monotonic() + 60
            while any(len(records[p]) < ends[p] for p in ends):
                assert time.monotonic() < deadline, "the oracle could not read the topic"
                for msg in consumer.consume(1000, 0.5):
                    if msg.error() is None:
                        records[msg.partition()].append(json.loads(msg.value()))
        finally:
            consumer.close()
        self.records = records
        return ends

    def at(self, partition: int, offset: int) -> tuple[dict[str, int], dict[str, int]]:
        """Event counts by type and sessions by state after the records below `offset`."""
        counts = dict.fromkeys(EVENT_TYPES, 0)
        sessions: dict[str, str] = {}
        for event in self.records[partition][:offset]:
            counts[event["event_type"]] += 1
            if event["event_type"] == "stop":
                sessions.pop(event["session_id"], None)
            else:
                sessions[event["session_id"]] = STATE_AFTER[event["event_type"]]
        states = collections.Counter(sessions.values())
        return counts, {state: states[state] for state in ACTIVE}


def shown(snapshot: dict[str, Any]) -> tuple[dict[str, int], dict[str, int]]:
    """What a `qoe` snapshot says: events by type, sessions by state."""
    devices = snapshot["devices"].values()
    counts = {t: sum(d["events"][t] for d in devices) for t in EVENT_TYPES}
    return counts, {state: sum(d[state] for d in devices) for state in ACTIVE}


def assert_every_snapshot_is_exact(topic: Topic, snapshots: list[dict[str, Any]]) -> None:
    assert snapshots
    for snapshot in snapshots:
        expected = topic.at(snapshot["partition"], snapshot["offset"])
        assert shown(snapshot) == expected, (
            snapshot["owner"],
            snapshot["partition"],
            snapshot["offset"],
        )


def totals(latest: dict[int, dict[str, Any]]) -> dict[str, int]:
    counts = [shown(s)[0] for s in latest.values()]
    return {t: sum(c[t] for c in counts) for t in EVENT_TYPES}


def wait_counted_to_the_end(
    browser: Browser, ends: dict[int, int], timeout: float = 60
) -> dict[int, dict[str, Any]]:
    """The newest snapshot of each partition, once every partition's reaches its end."""
    deadline = time.monotonic() + timeout
    latest: dict[int, dict[str, Any]] = {}
    while time.monotonic() < deadline:
        for snapshot in browser.get("qoe"):
            latest[snapshot["partition"]] = snapshot
        if {p: s["offset"] for p, s in latest.items()} == ends:
            return latest
        time.sleep(0.5)
    raise AssertionError(f"not counted to the end {ends}: {[s['offset'] for s in latest.values()]}")


def produced(sim: ServiceProcess) -> int:
    """How many events event-sim says the broker acknowledged (its last log line)."""
    assert sim.wait_exit(180) == 0, sim.log()
    (finished,) = [r for r in sim.log_records() if r.get("msg") == "finished"]
    assert (finished["failed"], finished["unsent"]) == (0, 0), finished
    return int(finished["delivered"])


def restored(process: ServiceProcess) -> float:
    return process.metric("gateway_qoe_checkpoints_total", result="restored")


# -- the tests


def test_scaling_1_3_1_keeps_every_count_exact(
    kafka: KafkaUnderTest, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with ServiceGroup() as group:
        fleet = make_fleet(kafka, group, tmp_path)
        fleet.start("gateway-1")
        fleet.wait_settled("playback-events", EVENTS_PARTITIONS)
        browser = Browser(fleet.url)
        sim = start_event_sim(
            group,
            *"--rate 120 --users 1500 --count 7200 --seed 13".split(),
            env={**fleet.env, "LOG_FORMAT": "json"},
        )
        browser.wait("qoe", 6, 30)
        time.sleep(12)
        steps = {}
        fleet.start("gateway-2", "gateway-3")
        steps["1 -> 3"] = fleet.wait_settled("playback-events", EVENTS_PARTITIONS)
        settled = time.monotonic()
        assert fleet.owned("playback-events") == {f"gateway-{i}": 1.0 for i in (1, 2, 3)}
        fleet.wait_settled("video-detections", 3)
        wait_owners(browser, {"gateway-1", "gateway-2", "gateway-3"}, since=settled)
        # The new replicas started from the partitions' checkpoints, not from nothing.
        assert restored(fleet.running["gateway-2"]) + restored(fleet.running["gateway-3"]) >= 2
        time.sleep(10)
        fleet.stop("gateway-2", "gateway-3")
        steps["3 -> 1"] = fleet.wait_settled("playback-events", EVENTS_PARTITIONS)
        assert fleet.owned("playback-events") == {"gateway-1": 3.0}
        assert restored(fleet.running["gateway-1"]) >= 2
        count = produced(sim)
        topic = Topic(kafka, fleet.topic("playback-events"))
        ends = topic.read()
        assert sum(ends.values()) == count == 7200
        latest = wait_counted_to_the_end(browser, ends)
        browser.close()
    # Every number the dashboard was shown, before, during and after each step, is the
    # topic's own; and the totals at the end are the produced counts.
    assert_every_snapshot_is_exact(topic, browser.get("qoe"))
    assert totals(latest) == totals_of(topic)
    assert sum(totals(latest).values()) == count
    with capsys.disabled():
        print(f"\nseconds until the partitions were spread again: {steps}")


def totals_of(topic: Topic) -> dict[str, int]:
    counts = collections.Counter(e["event_type"] for r in topic.records.values() for e in r)
    return {t: counts[t] for t in EVENT_TYPES}


def wait_owners(browser: Browser, owners: set[str], since: float, timeout: float = 15) -> None:
    """Wait until the browser received snapshots from each of `owners` after `since`."""
    deadline = time.monotonic() + timeout
    seen: set[str] = set()
    while time.monotonic() < deadline:
        seen = {s["owner"] for s in browser.get("qoe", since)}
        if seen == owners:
            return
        time.sleep(0.2)
    raise AssertionError(f"snapshots from {seen}, expected {owners}")


def test_a_killed_replica_loses_nothing_and_its_browsers_come_back_through_nginx(
    kafka: KafkaUnderTest, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with ServiceGroup() as group:
        fleet = make_fleet(kafka, group, tmp_path)
        fleet.start("gateway-1", "gateway-2", "gateway-3")
        fleet.wait_settled("playback-events", EVENTS_PARTITIONS)
        browsers: list[Browser] = []
        while {b.replica for b in browsers} != set(fleet.running):
            assert len(browsers) < 12, [b.replica for b in browsers]
            browsers.append(Browser(fleet.url, reconnection=True))
        sim = start_event_sim(
            group,
            *"--rate 150 --users 1500 --count 6000 --seed 17".split(),
            env={**fleet.env, "LOG_FORMAT": "json"},
        )
        time.sleep(12)
        victim = "gateway-2"
        orphans = [b for b in browsers if b.replica == victim]
        survivors = [b for b in browsers if b.replica != victim]
        killed = time.monotonic()
        fleet.kill(victim)
        took = fleet.wait_settled("playback-events", EVENTS_PARTITIONS, timeout=120)
        for orphan in orphans:
            orphan.wait("qoe", 3, 30, since=time.monotonic())
            assert orphan.connects >= 2
            assert orphan.replica in fleet.running  # the cookie now names a survivor
        count = produced(sim)
        topic = Topic(kafka, fleet.topic("playback-events"))
        ends = topic.read()
        latest = wait_counted_to_the_end(survivors[0], ends)
        for browser in browsers:
            browser.close()
    # Browsers of the survivors never stopped receiving: a snapshot a second per partition.
    for browser in survivors:
        during = [t for t in browser.times("qoe") if killed - 2 <= t <= killed + took + 5]
        assert len(during) > 10, browser.replica
        gaps = [b - a for a, b in itertools.pairwise(during)]
        assert max(gaps) < 4.0, (browser.replica, max(gaps))
    snapshots = {
        (s["partition"], s["offset"], s["owner"]): s for b in browsers for s in b.get("qoe")
    }
    assert_every_snapshot_is_exact(topic, list(snapshots.values()))
    assert totals(latest) == totals_of(topic)
    assert sum(totals(latest).values()) == count == 6000
    with capsys.disabled():
        print(f"\npartitions of the killed replica owned again after {took:.1f}s")


def test_new_browsers_spread_over_the_replicas_and_each_stays_on_its_own(
    kafka: KafkaUnderTest, tmp_path: Path
) -> None:
    with ServiceGroup() as group:
        fleet = make_fleet(kafka, group, tmp_path)
        fleet.start("gateway-1", "gateway-2", "gateway-3")
        fleet.wait_settled("playback-events", EVENTS_PARTITIONS)
        landed = []
        for _ in range(30):
            session = requests.Session()
            url = f"{fleet.url}/socket.io/?EIO=4&transport=polling"
            handshake = session.get(url, timeout=10)
            assert handshake.status_code == 200, handshake.text
            replica = handshake.headers[REPLICA_HEADER]
            assert session.cookies.get(AFFINITY_COOKIE) == replica
            sid = json.loads(handshake.text[1:])["sid"]
            answered = [session.post(f"{url}&sid={sid}", data="40", timeout=10)]
            answered += [session.get(f"{url}&sid={sid}", timeout=30) for _ in range(3)]
            assert [r.status_code for r in answered] == [200] * 4
            assert {r.headers[REPLICA_HEADER] for r in answered} == {replica}
            assert not any("Set-Cookie" in r.headers for r in answered)  # already pinned
            landed.append(replica)
        spread = collections.Counter(landed)
        assert set(spread) == set(fleet.running), spread


def test_a_browser_on_one_replica_gets_the_data_of_partitions_another_owns(
    kafka: KafkaUnderTest, tmp_path: Path
) -> None:
    with ServiceGroup() as group:
        # One partition per topic: whoever owns it owns all of it.
        fleet = make_fleet(kafka, group, tmp_path, partitions=1)
        start_capture(
            group,
            *"cam-scale --source test --fps 5 --test-width 320".split(),
            *"--test-height 240 --no-faces".split(),
            env=fleet.env,
        )
        fleet.start("gateway-b")
        fleet.wait_settled("playback-events", 1)
        fleet.wait_settled("video-detections", 1)
        fleet.start("gateway-a")
        start_event_sim(group, "--rate", "50", "--users", "500", env=fleet.env)
        browser = Browser(fleet.url, replica="gateway-a")
        try:
            browser.wait("new_event", 3, 30)
            qoe = browser.wait("qoe", 3, 30)
            browser.wait("detection", 3, 60)
            assert browser.replica == "gateway-a"
            assert {s["owner"] for s in qoe} == {"gateway-b"}
            assert fleet.owned("playback-events") == {"gateway-a": 0.0, "gateway-b": 1.0}
            assert fleet.owned("video-detections") == {"gateway-a": 0.0, "gateway-b": 1.0}
        finally:
            browser.close()
        watch_one_camera_from_two_replicas(fleet, "cam-scale")


def watch_one_camera_from_two_replicas(fleet: Fleet, camera: str) -> None:
    """Video across replicas: each replica reads the camera for its own viewers only."""
    a, b = fleet.running["gateway-a"], fleet.running["gateway-b"]
    with Viewer(fleet.url, camera, "gateway-a") as on_a:
        assert on_a.frames(3) == "gateway-a"
        a.wait_for(lambda: a.metric("gateway_camera_reads") == 1, 15, "a read on gateway-a")
        assert b.metric("gateway_camera_reads") == 0
        with Viewer(fleet.url, camera, "gateway-b") as on_b:
            assert on_b.frames(3) == "gateway-b"
            assert on_a.frames(3) == "gateway-a"
            assert b.metric("gateway_camera_reads") == 1
    for process in (a, b):
        wait_no_reads(process)


def wait_no_reads(process: ServiceProcess) -> None:
    process.wait_for(
        lambda: process.metric("gateway_camera_reads") == 0,
        15,
        "the camera's read released after its last viewer",
    )


class Viewer:
    """An MJPEG viewer through nginx, pinned to a replica by the affinity cookie."""

    def __init__(self, url: str, camera: str, replica: str) -> None:
        request = urllib.request.Request(
            f"{url}/stream/{camera}", headers={"Cookie": f"{AFFINITY_COOKIE}={replica}"}
        )
        self.response = urllib.request.urlopen(request, timeout=10)

    def frames(self, count: int) -> str:
        """Read `count` more JPEG parts; returns the replica that serves them."""
        found, tail = 0, b""
        while found < count:
            chunk = self.response.read1(65536)
            assert chunk, "the stream ended"
            data = tail + chunk
            found += data.count(PART)
            tail = data[-(len(PART) - 1) :]  # too short to hold a whole marker
        return str(self.response.headers[REPLICA_HEADER])

    def __enter__(self) -> Viewer:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.response.close()


def test_each_consumer_group_restores_its_own_newest_checkpoint(
    kafka: KafkaUnderTest, topic_prefix: str
) -> None:
    """Gateways of two groups on the same topics write checkpoints of the same partition;
    each group takes the partition over from its own, however many the other wrote
    since (a real broker, the gateway's own reading code)."""
    settings = GatewaySettings(
        kafka_bootstrap=kafka.bootstrap, kafka_topic_prefix=topic_prefix, async_mode="threading"
    )
    bridge = KafkaBridge(settings, ThreadingRuntime(), GatewayMetrics())
    events = topic_prefix + "playback-events"
    producer = Producer(kafka.config())
    for _ in range(100):
        producer.produce(events, b"{}", partition=1)
    assert producer.flush(30) == 0

    def writer(group: str, offset: int, times: int) -> None:
        checkpoints = Checkpoints(
            bridge, events, group=group, owner=group, dedupe_window=10, interval=0
        )
        checkpoints.start()
        aggregate = PartitionAggregate(1, 0)
        for i in range(times):
            aggregate.offset = offset + i
            checkpoints.write_due([aggregate])
        checkpoints.close(30)

    writer("mine", 10, 1)
    writer("theirs", 50, 20)  # well past the first records read back
    for group, restored_at in (("mine", 10), ("theirs", 69), ("nobody", None)):
        consumer = Consumer(kafka.config(**{"group.id": f"{topic_prefix}{group}"}))
        reader = Checkpoints(bridge, events, group=group, owner="t", dedupe_window=10, interval=0)
        try:
            (takeover,) = reader.take_over(consumer, [1])
        finally:
            consumer.close()
        assert takeover.problem == ""
        if restored_at is None:
            assert not takeover.restored
        else:
            assert (takeover.restored, takeover.start) == (True, restored_at), group
