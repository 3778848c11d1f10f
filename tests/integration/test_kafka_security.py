"""Kafka as the cluster runs it, on this machine: SASL/SCRAM users and ACLs (KRaft's
StandardAuthorizer), each service with a user of its own and the ACLs of
`rts_common.acls`, and proof that each can do exactly its job."""

from __future__ import annotations

import secrets
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import requests
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, Producer, TopicPartition
from rts_common.acls import SERVICES, service_acls
from rts_common.contracts import TOPICS
from rts_common.signin import Authenticator
from rts_devstack import ports
from rts_devstack.broker import LocalKafka

from tests.fixtures.processes import (
    ServiceGroup,
    ServiceProcess,
    start_capture,
    start_event_sim,
    start_gateway,
)

SECRET = "kafka-security-test-secret-0123"
CAMERA = "secure-cam"


@dataclass
class Secured:
    broker: LocalKafka
    prefix: str
    group: str
    passwords: dict[str, str]

    def env(self, service: str, password: str | None = None) -> dict[str, str]:
        return self.broker.client_env(service, password or self.passwords[service]) | {
            "KAFKA_TOPIC_PREFIX": self.prefix,
            "GATEWAY_GROUP_ID": self.group,
        }

    def config(self, service: str, **extra: object) -> dict[str, object]:
        return self.broker.client_config(service, self.passwords[service]) | extra


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Secured]:
    reserved = ports.reserve(2)
    broker = LocalKafka.on_ports(
        tmp_path_factory.mktemp("secured"), reserved, admin_password=secrets.token_urlsafe(16)
    )
    broker.start()
    try:
        prefix, group = f"s{uuid.uuid4().hex[:8]}.", f"gw-{uuid.uuid4().hex[:6]}"
        broker.create_topics(TOPICS, prefix=prefix)
        passwords = {}
        for service in SERVICES:
            passwords[service] = secrets.token_urlsafe(12)
            broker.add_user(service, passwords[service])
            broker.allow(service, service_acls(service, topic_prefix=prefix, group_id=group))
        yield Secured(broker, prefix, group, passwords)
    finally:
        broker.stop()
        reserved.release()


def test_each_service_does_its_job_with_its_own_user(secured: Secured) -> None:
    with ServiceGroup() as group:
        capture = start_capture(
            group,
            CAMERA,
            *"--source test --fps 5 --test-width 320 --test-height 240".split(),
            env=secured.env("capture"),
        )
        sim = start_event_sim(group, "--rate", "50", "--users", "500", env=secured.env("event-sim"))
        gateway = start_gateway(
            group,
            env=secured.env("gateway")
            | {"GATEWAY_AUTH_SECRET": SECRET, "GATEWAY_EVENTS_START": "earliest"},
        )
        for service in (capture, sim, gateway):
            service.wait_ready(timeout=90)
        http = requests.Session()
        auth = Authenticator(SECRET, login_ttl=60, session_ttl=600)
        # The sign-in ledger: the gateway writes its topic and reads it back.
        signed_in = http.post(
            gateway.url + "/login", data={"token": auth.login_token()}, timeout=15
        )
        assert signed_in.status_code == 200, signed_in.text
        gateway.wait_for(
            lambda: (
                http.get(f"{gateway.url}/snapshot/{CAMERA}.jpg", timeout=10).content[:2]
                == b"\xff\xd8"
            ),
            30,
            "a frame through Kafka, read by the gateway's user",
        )
        gateway.wait_for(
            lambda: gateway.metric("gateway_playback_events_total") > 0,
            30,
            "events consumed in the gateway's group",
        )
        gateway.wait_for(
            lambda: gateway.metric("gateway_broadcast_published_total") > 0,
            30,
            "dashboard broadcasts published",
        )
        assert gateway.metric("gateway_broadcast_dropped_total") == 0
        errors = gateway.metric("gateway_kafka_errors_total")
        assert errors == 0, gateway.log()


def _read_error(config: dict[str, object], topic: str) -> KafkaError | None:
    """The first error a direct read of `topic` meets (None if it reads), under a group id
    like the gateway's direct readers carry."""
    consumer = Consumer(config | {"group.id": "gateway-direct-probe", "enable.auto.commit": False})
    try:
        consumer.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is not None:
                return msg.error()
        return None
    finally:
        consumer.close()


def _write_error(config: dict[str, object], topic: str) -> KafkaError | None:
    """The delivery error of one record written to `topic` (None if delivered)."""
    reports: list[KafkaError | None] = []
    producer = Producer(config | {"message.timeout.ms": 10000})
    producer.produce(
        topic,
        b"\xff\xd8probe\xff\xd9",
        key=b"intruder",
        on_delivery=lambda err, _msg: reports.append(err),
    )
    producer.flush(15)
    assert reports, "no delivery report"
    return reports[0]


def test_capture_cannot_consume_and_the_gateway_cannot_produce_frames(secured: Secured) -> None:
    frames, events = secured.prefix + "video-frames", secured.prefix + "playback-events"
    denied = KafkaError.TOPIC_AUTHORIZATION_FAILED
    attempts = {
        "capture reads frames": _read_error(secured.config("capture"), frames),
        "the gateway writes frames": _write_error(secured.config("gateway"), frames),
        "event-sim writes frames": _write_error(secured.config("event-sim"), frames),
        "the autoscaler writes events": _write_error(secured.config("autoscaler"), events),
    }
    codes = {what: error.code() if error else None for what, error in attempts.items()}
    # Capture may not read the topic, nor use any group: either refusal comes first.
    if codes["capture reads frames"] == KafkaError.GROUP_AUTHORIZATION_FAILED:
        codes["capture reads frames"] = denied
    assert codes == dict.fromkeys(attempts, denied), attempts
    # ...and the same users can do their own jobs.
    assert _write_error(secured.config("capture"), frames) is None
    assert _read_error(secured.config("gateway"), frames) is None


@pytest.mark.parametrize("service", ["capture", "event-sim", "gateway"])
def test_a_wrong_password_fails_fast_with_a_clear_log_line_and_readiness_false(
    secured: Secured, service: str
) -> None:
    env = secured.env(service, password="not-the-password") | {"LOG_FORMAT": "json"}
    with ServiceGroup() as group:
        process: ServiceProcess = {
            "capture": lambda: start_capture(group, CAMERA, "--source", "test", env=env),
            "event-sim": lambda: start_event_sim(group, "--rate", "10", env=env),
            "gateway": lambda: start_gateway(group, env=env),
        }[service]()
        # Up (its ops port answers), then it must say what is wrong within seconds.
        process.wait_for(lambda: process.get("/healthz")[0] == 200, 90, "the process up")
        started = time.monotonic()
        says = "Kafka authentication failed: check KAFKA_USERNAME, KAFKA_PASSWORD"
        process.wait_for(
            lambda: any(
                says in r.get("msg", "") and r["level"] == "error" for r in process.log_records()
            ),
            20,
            "a log line saying the Kafka credentials were refused",
        )
        assert time.monotonic() - started < 20
        process.wait_for(lambda: process.get("/readyz")[0] == 503, 10, "readiness false")
        assert "authentication failed" in process.readiness()["kafka_error"]
