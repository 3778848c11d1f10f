"""The notifier end to end: a face walking into a zone of capture's test pattern arrives,
once, at a webhook receiver and an MQTT subscriber (Debian's mosquitto), with the zone's
name and a snapshot link; a receiver that was down gets it when it is back; one that
refuses it leaves a dead letter saying why."""

from __future__ import annotations

import json
import shutil
import threading
from collections.abc import Iterator
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from rts_capture.sample import write_face
from rts_common.contracts import DEAD_LETTERS, DeadLetter, decode_dead_letter
from rts_devstack import launch
from rts_devstack.processes import ServiceProcess
from rts_notifier.receivers import SIGNATURE_HEADER, TIMESTAMP_HEADER, signature

from tests.fixtures.capture import Launcher, read_topic
from tests.fixtures.kafka import KafkaUnderTest
from tests.fixtures.processes import ServiceGroup, kafka_env

SECRET = "hook-secret"
GATEWAY = "https://dash.example"


class Receiver:
    """A webhook receiver on a fixed port that can be down (nothing listening) and come back;
    it keeps every POST and answers `status`."""

    def __init__(self, port: int, status: int = 200) -> None:
        self.port = port
        self.url = f"http://127.0.0.1:{self.port}/hook"
        self.status = status
        self.posts: list[tuple[Message, bytes]] = []
        self.server: ThreadingHTTPServer | None = None

    def up(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.posts.append((self.headers, body))  # names case-insensitive
                self.send_response(receiver.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def down(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    def messages(self) -> list[dict[str, Any]]:
        return [json.loads(body) for _headers, body in self.posts]


@pytest.fixture
def mosquitto(services: ServiceGroup, tmp_path: Path) -> Iterator[int]:
    """Debian's mosquitto on a reserved loopback port."""
    binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    if not Path(binary).exists():
        pytest.fail("mosquitto is not installed: `sudo make system-deps`", pytrace=False)
    port = services.port()
    config = tmp_path / "mosquitto.conf"
    broker = services.start(
        launch.process(
            "mosquitto",
            [binary, "-c", config],
            files={config: f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n"},
        )
    )
    broker.wait_line("running", 20)
    yield port
    broker.terminate()


class Subscriber:
    def __init__(self, port: int, topic: str) -> None:
        self.messages: list[tuple[str, bytes]] = []
        self.subscribed = threading.Event()
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="test-subscriber")
        client.on_connect = lambda c, *_: c.subscribe(topic, qos=1)
        client.on_subscribe = lambda *_: self.subscribed.set()
        client.on_message = lambda _c, _d, msg: self.messages.append((msg.topic, msg.payload))
        client.connect("127.0.0.1", port)
        client.loop_start()
        self.client = client

    def events(self) -> list[dict[str, Any]]:
        return [json.loads(p) for t, p in self.messages if t == "rts/events"]

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def _wait(condition: Any, timeout: float, what: str, *watched: ServiceProcess) -> None:
    watched[0].wait_for(condition, timeout, what)
    for process in watched[1:]:
        assert process.running, process.log()


def test_a_face_entering_a_zone_is_pushed_once_and_a_receiver_that_was_down_gets_it(
    kafka: KafkaUnderTest,
    topic_prefix: str,
    launch_capture: Launcher,
    services: ServiceGroup,
    mosquitto: int,
    tmp_path: Path,
) -> None:
    subscriber = Subscriber(mosquitto, "rts/#")
    assert subscriber.subscribed.wait(10)
    late, refusing = Receiver(services.port()), Receiver(services.port(), status=410)
    refusing.up()  # `late` is down until the event has been tried on it
    notifier = services.start(
        launch.notifier(
            *"--rules cam-door/door=face".split(),
            *f"--webhooks {late.url},{refusing.url} --webhook-secret {SECRET}".split(),
            *f"--mqtt-host 127.0.0.1 --mqtt-port {mosquitto} --gateway-url {GATEWAY}".split(),
            *"--event-gap 3 --retry-first 0.5 --retry-max 2 --max-attempts 30".split(),
            ops_port=services.port(),
            env=kafka_env(kafka.bootstrap, topic_prefix, LOG_FORMAT="json"),
        )
    )
    notifier.wait_ready(60)
    try:
        assert write_face(tmp_path / "face.png")
        # The door: the right 40% of the test pattern; the face drifts into it and out.
        capture = launch_capture(
            *"--source test --camera-id cam-door --no-motion --face-every 2".split(),
            *["--test-face", str(tmp_path / "face.png"), "--zones", "door=0.6,0 1,0 1,1 0.6,1"],
        )

        def events(kind: str) -> list[dict[str, Any]]:
            return [e for e in subscriber.events() if e["type"] == kind]

        _wait(lambda: events("new"), 90, "the face in the door on MQTT", notifier, capture)
        _wait(
            lambda: (
                notifier.metric(
                    "notifier_deliveries_total", receiver="webhook-1", result="unreachable"
                )
                >= 1
            ),
            30,
            "a failed delivery to the receiver that is down",
            notifier,
        )
        late.up()
        _wait(late.messages, 30, "the late receiver to get the event", notifier)
        # The face walks out of the door: the event ends; until then it was one event.
        _wait(lambda: events("end"), 60, "the end of the event on MQTT", notifier, capture)
        _wait(
            lambda: any(m["type"] == "end" for m in late.messages()),
            30,
            "the end at the late receiver",
            notifier,
        )
    finally:
        late.down()
        refusing.down()
        subscriber.close()

    first_end = next(i for i, e in enumerate(subscriber.events()) if e["type"] == "end")
    on_mqtt = [e for e in subscriber.events()[:first_end] if e["type"] == "new"]
    assert len(on_mqtt) == 1
    posted = late.messages()
    end_at = next(i for i, m in enumerate(posted) if m["type"] == "end")
    assert [m["type"] for m in posted[:end_at]] == ["new"]
    for new in (on_mqtt[0], posted[0]):
        after = new["after"]
        assert after["camera"] == "cam-door"
        assert after["label"] == "face"
        assert after["current_zones"] == after["entered_zones"] == ["door"]
        assert after["snapshot_url"].startswith(f"{GATEWAY}/snapshot/cam-door.jpg?at=20")
        assert after["replay_url"].startswith(f"{GATEWAY}/stream/cam-door?from=20")
    assert on_mqtt[0]["after"]["id"] == posted[0]["after"]["id"]
    # Signed: the receiver can check the body and its time came from the notifier.
    headers, body = late.posts[0]
    assert headers[SIGNATURE_HEADER] == signature(SECRET, headers[TIMESTAMP_HEADER], body)
    topics = dict(subscriber.messages)
    assert topics["rts/available"] == b"online"
    assert "rts/cam-door/face" in topics
    assert "rts/door/face" in topics

    # The receiver that refuses it (410 Gone): no retry, a dead letter saying why.
    letters: list[DeadLetter] = [
        decode_dead_letter(r.key(), r.value(), r.headers())
        for r in read_topic(kafka, topic_prefix + DEAD_LETTERS.name, count=1, timeout=30)
    ]
    assert len(letters) == 1
    assert letters[0].reason == "undeliverable"
    assert refusing.url.removesuffix("") in letters[0].detail
    assert "HTTP 410" in letters[0].detail
    assert "after 1 attempt(s)" in letters[0].detail
    assert letters[0].key == b"cam-door"
    assert notifier.terminate() == 0
