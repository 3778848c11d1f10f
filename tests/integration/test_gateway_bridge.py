"""No Kafka call runs on the eventlet hub: green threads keep ticking while consumers block."""

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import socketio
from rts_devstack import launch

from tests.fixtures.kafka import KafkaUnderTest
from tests.fixtures.processes import ServiceGroup, kafka_env, start_event_sim, start_gateway

TICKER = """
import eventlet
eventlet.monkey_patch()
import json, sys, time
from confluent_kafka import Consumer, TopicPartition
from rts_common.contracts import VIDEO_FRAMES
from rts_gateway.bridge import BadRecords, ConsumerLoop, Topic
from rts_gateway.bridge.runtime import EventletRuntime
from rts_gateway.metrics import GatewayMetrics

bootstrap, topic = sys.argv[1], sys.argv[2]
config = {"bootstrap.servers": bootstrap, "group.id": "bridge-test", "enable.auto.commit": False}

def max_gap(seconds):
    gaps, last, end = [], time.monotonic(), time.monotonic() + seconds
    while time.monotonic() < end:
        eventlet.sleep(0.05)
        now = time.monotonic()
        gaps.append(now - last - 0.05)
        last = now
    return max(gaps)

runtime = EventletRuntime()
# Through the bridge: the consumer blocks 2 s per poll on an empty partition, natively.
loop = ConsumerLoop(runtime, config, Topic(VIDEO_FRAMES, topic), lambda batch: None,
                    BadRecords(GatewayMetrics()), name="blocked", poll_timeout=2.0)
loop.start()
loop.submit(lambda c: c.assign([TopicPartition(topic, 0)])).result(10)
bridged = max_gap(3.0)
loop.stop(10)

# The same call made on the hub, as the baseline's consumer-in-a-green-thread would.
consumer = Consumer(config)
consumer.assign([TopicPartition(topic, 0)])
eventlet.spawn(consumer.consume, 1, 2.0)
on_hub = max_gap(3.0)
consumer.close()
print(json.dumps({"bridged": bridged, "on_hub": on_hub}))
"""


def test_green_ticker_keeps_its_period_while_a_consumer_blocks_in_kafka(
    kafka: KafkaUnderTest, topic_prefix: str
) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-W",
            "ignore",
            "-c",
            TICKER,
            kafka.bootstrap,
            topic_prefix + "video-frames",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    gaps = json.loads(result.stdout.strip().splitlines()[-1])
    # The control proves the measurement sees a blocked hub: the direct call stalls it ~2 s.
    assert gaps["on_hub"] > 1.5, gaps
    assert gaps["bridged"] < 0.25, gaps


def _get_ms(url: str) -> float:
    started = time.monotonic()
    with urllib.request.urlopen(url, timeout=5) as response:
        response.read()
    return (time.monotonic() - started) * 1000


def test_gateway_answers_in_milliseconds_while_its_consumers_wait_on_kafka(
    kafka: KafkaUnderTest, topic_prefix: str, services: ServiceGroup
) -> None:
    env = kafka_env(kafka.bootstrap, topic_prefix)
    gateway = start_gateway(services, "--async-mode", "eventlet", env=env)
    base = gateway.url
    gateway.wait_ready(timeout=40)
    # Idle topics: every consumer thread sits inside a blocking Kafka call right now.
    time.sleep(2)
    timings = sorted(_get_ms(base + "/api/cameras") for _ in range(30))
    assert timings[len(timings) // 2] < 50, timings
    assert timings[-1] < 500, timings
    metrics = urllib.request.urlopen(gateway.ops + "/metrics", timeout=5).read().decode()
    # The hub's own 100 ms timer never fired more than half a second late.
    slow = re.search(r'gateway_event_loop_lag_seconds_bucket\{le="0.5"\} (\S+)', metrics)
    total = re.search(r"gateway_event_loop_lag_seconds_count (\S+)", metrics)
    assert slow, metrics[:2000]
    assert total, metrics[:2000]
    assert float(total.group(1)) >= 10
    assert float(slow.group(1)) == float(total.group(1))
    started = time.monotonic()
    assert gateway.terminate() == 0, gateway.log()
    assert time.monotonic() - started < 10


def test_a_backlog_of_events_never_starves_requests(
    kafka: KafkaUnderTest, topic_prefix: str, services: ServiceGroup
) -> None:
    env = kafka_env(kafka.bootstrap, topic_prefix)
    # Enough that the catch-up lasts seconds at the gateway's ingest rate (~28,000/s).
    backlog = 150_000
    sim = start_event_sim(
        services, "--no-realtime", "--count", str(backlog), "--seed", "2", env=env
    )
    assert sim.wait_exit(120) == 0, sim.log()
    gateway = start_gateway(
        services,
        env=env
        | {"GATEWAY_EVENTS_START": "earliest", "GATEWAY_GROUP_ID": f"backlog-{topic_prefix}"},
    )
    base = gateway.url
    gateway.wait_http(gateway.ops + "/healthz", timeout=60)
    timings = []
    consumed = 0.0
    deadline = time.monotonic() + 90
    while consumed < backlog and time.monotonic() < deadline:
        timings.append(_get_ms(base + "/api/cameras"))
        text = urllib.request.urlopen(gateway.ops + "/metrics", timeout=5).read().decode()
        consumed = sum(
            float(m) for m in re.findall(r"gateway_playback_events_total\{[^}]*\} (\S+)", text)
        )
        time.sleep(0.1)
    assert consumed == backlog
    assert len(timings) > 10  # the catch-up took a while: the timings cover it
    assert max(timings) < 1000, sorted(timings)[-5:]


def test_sign_in_guards_streams_and_socketio_on_a_real_server(
    kafka: KafkaUnderTest, topic_prefix: str, services: ServiceGroup
) -> None:
    secret = "integration-secret-0123456789"
    env = kafka_env(kafka.bootstrap, topic_prefix, GATEWAY_AUTH_SECRET=secret)
    gateway = start_gateway(services, env=env)
    base = gateway.url
    gateway.wait_ready(timeout=40)
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(base + "/api/cameras", timeout=5)
    assert refused.value.code == 401
    link = subprocess.run(
        [launch.command("gateway"), "login-url", "--base", base],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    # What the link's page does: the token from the #fragment, POSTed.
    base_of_link, _, token = link.partition("#token=")
    assert base_of_link == base + "/login"

    def trade() -> tuple[int, str]:
        post = urllib.request.Request(base + "/login", data=f"token={token}".encode())
        try:
            with urllib.request.urlopen(post, timeout=10) as response:
                return response.status, response.headers["Set-Cookie"].split(";", 1)[0]
        except urllib.error.HTTPError as error:
            return error.code, ""

    status, cookie = trade()
    assert status == 200
    request = urllib.request.Request(base + "/api/cameras", headers={"Cookie": cookie})
    assert json.loads(urllib.request.urlopen(request, timeout=5).read()) == {"cameras": []}
    assert trade()[0] == 401  # a login link works once
    anonymous = socketio.Client(reconnection=False)
    with pytest.raises(socketio.exceptions.ConnectionError):
        anonymous.connect(base, transports=["websocket"], wait_timeout=5)
    client = socketio.Client(reconnection=False)
    client.connect(base, headers={"Cookie": cookie}, transports=["websocket"], wait_timeout=5)
    assert client.connected
    client.disconnect()


def test_the_worker_does_not_outlive_a_killed_master(
    kafka: KafkaUnderTest, topic_prefix: str, services: ServiceGroup
) -> None:
    gateway = start_gateway(services, env=kafka_env(kafka.bootstrap, topic_prefix))
    gateway.wait_http(gateway.ops + "/healthz", timeout=40)
    children = Path(f"/proc/{gateway.proc.pid}/task/{gateway.proc.pid}/children").read_text()
    (worker,) = [int(pid) for pid in children.split()]
    os.kill(gateway.proc.pid, signal.SIGKILL)  # the master only, as the OOM killer would
    deadline = time.monotonic() + 15
    while Path(f"/proc/{worker}").exists() and time.monotonic() < deadline:
        stat = Path(f"/proc/{worker}/stat").read_text().split()
        if stat[2] == "Z":
            break
        time.sleep(0.2)
    alive = (
        Path(f"/proc/{worker}").exists()
        and Path(f"/proc/{worker}/stat").read_text().split()[2] != "Z"
    )
    assert not alive, "gunicorn's worker kept running after its master was killed"
