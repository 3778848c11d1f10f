"""Bad input from outside: poison events and detections are counted under their reason and
kept in the dead-letter topic while the dashboard goes on; requests no route could serve
are answered 4xx at once, never 5xx, and create no Kafka read or thread."""

from __future__ import annotations

import json
import random
import socket
import string
import time
import urllib.parse
import uuid
from collections.abc import Iterator

import pytest
from confluent_kafka import Producer
from rts_common.contracts import DEAD_LETTERS, TOPICS, decode_dead_letter
from rts_common.events import ns_to_ts
from rts_devstack.processes import ServiceProcess, http_get

from tests.fixtures.capture import read_topic
from tests.fixtures.kafka import KafkaUnderTest
from tests.fixtures.processes import ServiceGroup, kafka_env, start_capture, start_gateway
from tests.fixtures.socketio import Listener

CAMERA = "cam-input"


@pytest.fixture(scope="module")
def gateway(kafka: KafkaUnderTest) -> Iterator[tuple[ServiceProcess, str]]:
    prefix = f"bad{uuid.uuid4().hex[:8]}."
    kafka.create_topics(list(TOPICS), prefix)
    env = kafka_env(
        kafka.bootstrap, prefix, GATEWAY_GROUP_ID=f"bad-{prefix}", GATEWAY_EVENTS_START="earliest"
    )
    with ServiceGroup(env) as group:
        start_capture(
            group,
            CAMERA,
            *"--source test --fps 5 --test-width 160 --test-height 120 --no-faces".split(),
        )
        gateway = start_gateway(group)
        gateway.wait_ready(timeout=60)
        gateway.wait_for(
            lambda: (
                "cameras" in http_get(gateway.url + "/api/cameras")[1]
                and CAMERA in http_get(gateway.url + "/api/cameras")[1]
            ),
            30,
            "the camera",
        )
        yield gateway, prefix


def _event(seq: int, **changes: object) -> bytes:
    event: dict[str, object] = {
        "event_id": f"good-{seq}-{uuid.uuid4().hex[:6]}",
        "user_id": "u1",
        "movie_id": "MOV001",
        "event_type": "play",
        "position_seconds": 0,
        "bitrate_kbps": 3000,
        "device": "web",
        "ts": ns_to_ts(time.time_ns()),
        "session_id": f"s{seq}",
        "startup_ms": 900,
    }
    event.update(changes)
    return json.dumps(event).encode()


def test_poison_events_and_detections_are_counted_kept_and_the_dashboard_goes_on(
    gateway: tuple[ServiceProcess, str], kafka: KafkaUnderTest
) -> None:
    service, prefix = gateway
    listener = Listener(service.url)
    events, detections = prefix + "playback-events", prefix + "video-detections"
    poison = {
        "not_json": [b"\xff\xfe\x00 not utf-8", b"{not json", b"[" * 10_000 + b"]" * 10_000],
        "invalid": [_event(1, bitrate_kbps="fast"), b'{"event_type": "play"}'],
        "too_large": [_event(2, movie_id="x" * 200_000)],
        "empty": [b""],
    }
    # The producer would send 16 MB: what refuses the 10 MB event below is the broker.
    producer = Producer(kafka.config(**{"message.max.bytes": 16 << 20}))
    try:
        for values in poison.values():
            for value in values:
                producer.produce(events, value, key=b"poison")
        producer.produce(detections, b'{"camera": "cam-input", "kind": "teleport"}', key=CAMERA)
        for seq in range(10):
            producer.produce(events, _event(100 + seq), key=f"s{seq}")
        # Beyond what the topic accepts (1 MB by default): refused by the broker itself.
        refused: list[object] = []
        producer.produce(
            events,
            _event(3, movie_id="y" * (10 << 20)),
            key=b"huge",
            on_delivery=lambda err, _msg: refused.append(err),
        )
        assert producer.flush(20) == 0
        assert refused
        assert refused[0] is not None

        # The dashboard goes on: the good events after the poison ones are emitted.
        listener.wait(
            "new_event", lambda got: any(e["event_id"].startswith("good-1") for e in got), 30
        )
    finally:
        listener.close()

    for reason, values in poison.items():

        def counted(reason: str = reason, expected: int = len(values)) -> bool:
            labels = {"topic": events, "reason": reason}
            return service.metric("gateway_bad_messages_total", **labels) >= expected

        service.wait_for(counted, 20, f"poison events counted as {reason}")
    service.wait_for(
        lambda: (
            service.metric("gateway_bad_messages_total", topic=detections, reason="invalid") >= 1
        ),
        20,
        "the poison detection counted",
    )
    kept = sum(len(v) for v in poison.values()) + 1
    service.wait_for(
        lambda: service.metric("gateway_dead_letters_total", result="kept") >= kept,
        30,
        "every poison record kept as a dead letter",
    )
    letters = [
        decode_dead_letter(m.key(), m.value(), m.headers())
        for m in read_topic(kafka, prefix + DEAD_LETTERS.name, count=kept, timeout=30)
    ]
    assert len(letters) == kept
    by_reason: dict[str, int] = {}
    for letter in letters:
        by_reason[letter.reason] = by_reason.get(letter.reason, 0) + 1
        assert letter.topic in (events, detections)
        assert letter.offset >= 0
    assert by_reason == {**{r: len(v) for r, v in poison.items()}, "invalid": 3}
    huge = next(letter for letter in letters if letter.reason == "too_large")
    assert len(huge.value or b"") > 200_000  # kept whole, as it came
    assert service.running


NASTY_IDS = [
    "../../etc/passwd",
    "..%2f..%2fetc%2fpasswd",
    "%00",
    "a" * 5000,
    "cam%0d%0aX-Injected:1",
    "😀",
    "con",
    "-",
    ".",
    "%",
    "%%",
    "cam-input/../cam-input",
    "cam-input%2f..",
]


def _random_id(rng: random.Random) -> str:
    alphabet = string.printable + "éü😀\u202e"
    return "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 80)))


def test_any_camera_id_or_option_is_a_quick_4xx_and_creates_no_read_or_thread(
    gateway: tuple[ServiceProcess, str],
) -> None:
    service, _prefix = gateway
    reads_before = service.metric("gateway_partition_assignments_total")
    threads_before = _threads(service)
    rng = random.Random(15)
    paths = []
    for camera in [*NASTY_IDS, *(_random_id(rng) for _ in range(1500))]:
        quoted = urllib.parse.quote(camera, safe="")
        route = rng.choice(["/stream/{}", "/kaf/{}", "/snapshot/{}.jpg", "/stream/{}?fps={}"])
        paths.append(route.format(quoted, rng.choice(["0", "-1", "nan", "1e309", "x", ""])))
    paths += [f"/stream/{CAMERA}?fps={v}" for v in ("0", "-5", "nan", "inf", "1e309", "x" * 999)]
    slowest, statuses = 0.0, {}
    for path in paths:
        started = time.monotonic()
        status = _raw_status(service, f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n")
        slowest = max(slowest, time.monotonic() - started)
        statuses[status] = statuses.get(status, 0) + 1
        assert 400 <= status < 500, (path, status)
    for raw in (
        "GARBAGE\r\n\r\n",
        "GET /stream/x HTTP/9.9\r\n\r\n",
        "GET " + "/a" * 5000 + " HTTP/1.1\r\nHost: x\r\n\r\n",
        "GET /api/cameras HTTP/1.1\r\nHost: x\r\nX-Big: " + "b" * 20_000 + "\r\n\r\n",
        "GET /api/cameras HTTP/1.1\r\n" + "".join(f"X-{i}: y\r\n" for i in range(200)) + "\r\n",
    ):
        status = _raw_status(service, raw)
        assert 400 <= status < 500 or status == 0, (raw[:40], status)
    print(f"{len(paths)} bad requests: statuses {statuses}, slowest {slowest * 1000:.0f} ms")
    assert service.metric("gateway_partition_assignments_total") == reads_before
    assert service.metric("gateway_replay_viewers") == 0
    assert _threads(service) <= threads_before
    assert service.running


def _raw_status(service: ServiceProcess, request: str) -> int:
    """The status of a raw request (0 when the server just closes the connection)."""
    host, port = (
        urllib.parse.urlsplit(service.url).hostname,
        urllib.parse.urlsplit(service.url).port,
    )
    with socket.create_connection((host, port), timeout=10) as sock:
        sock.sendall(request.encode("utf-8", "surrogateescape"))
        head = b""
        while b"\r\n" not in head:
            chunk = sock.recv(4096)
            if not chunk:
                return 0
            head += chunk
    return int(head.split(b" ", 2)[1])


def _threads(service: ServiceProcess) -> int:
    """OS threads of the gateway's worker (the consumer loops' native threads among them)."""
    from rts_devstack.processes import process_tree

    total = 0
    for pid in process_tree(service.proc.pid):
        with open(f"/proc/{pid}/status") as status:
            total += next(int(line.split()[1]) for line in status if line.startswith("Threads:"))
    return total
