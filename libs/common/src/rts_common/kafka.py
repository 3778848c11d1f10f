"""Kafka client configuration and the few Kafka operations every service needs.

Services tune their own producers and consumers (each service's `kafka.py` says which
delivery semantics it chose and why); this module holds what is common: how to reach
and authenticate to the cluster, librdkafka's logs in our logs, topic creation, and
readiness checks.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping
from typing import Any, Literal

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import (
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    NewTopic,
    ResourceType,
)
from pydantic import SecretStr

from rts_common.contracts import TopicSpec
from rts_common.logs import Throttle
from rts_common.settings import Settings, setting

log = logging.getLogger(__name__)

SecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
SaslMechanism = Literal["SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN"]


class KafkaSettings(Settings):
    """How to reach the cluster; the same variables for every service."""

    kafka_bootstrap: str = setting(
        "127.0.0.1:9092", "Kafka bootstrap servers, host:port[,host:port]", env="KAFKA_BOOTSTRAP"
    )
    kafka_security_protocol: SecurityProtocol = setting(
        "PLAINTEXT", "Kafka security protocol", env="KAFKA_SECURITY_PROTOCOL"
    )
    kafka_sasl_mechanism: SaslMechanism = setting(
        "SCRAM-SHA-512", "SASL mechanism when the protocol is SASL_*", env="KAFKA_SASL_MECHANISM"
    )
    kafka_username: str = setting("", "SASL user name", env="KAFKA_USERNAME")
    kafka_password: SecretStr = setting(SecretStr(""), "SASL password", env="KAFKA_PASSWORD")
    kafka_ca_file: str = setting(
        "", "PEM file of the CA that signed the brokers' certificates", env="KAFKA_CA_FILE"
    )
    kafka_topic_prefix: str = setting(
        "",
        "Prefix for every topic name (lets tests and several stacks share one cluster)",
        env="KAFKA_TOPIC_PREFIX",
    )
    kafka_debug: str = setting(
        "",
        "librdkafka debug contexts for this service's clients, comma-separated (cgrp,consumer "
        "says what a consumer group member decides and why; all: everything), logged at "
        "debug level whatever LOG_LEVEL says; empty: none",
        pattern=r"^[a-z,]*$",
    )

    def topic_name(self, spec: TopicSpec[Any]) -> str:
        return f"{self.kafka_topic_prefix}{spec.name}"

    def client_config(self, client_id: str) -> dict[str, Any]:
        """Connection and security settings shared by producers, consumers and admin clients."""
        config: dict[str, Any] = {
            "bootstrap.servers": self.kafka_bootstrap,
            "client.id": client_id,
            "security.protocol": self.kafka_security_protocol,
            "logger": logging.getLogger("librdkafka"),
            # A broker restart should be a few seconds of reconnects, not minutes of backoff.
            "reconnect.backoff.max.ms": 2000,
            # A broker in controlled shutdown answers metadata without itself; a client
            # that knew only it then has no broker left and, without this, waits
            # librdkafka's 5 minutes before it goes back to bootstrap.servers (event-sim
            # delivered nothing for minutes after a broker restart in the fault schedule).
            "metadata.recovery.strategy": "rebootstrap",
            "metadata.recovery.rebootstrap.trigger.ms": 10_000,
        }
        if self.kafka_security_protocol.startswith("SASL"):
            config["sasl.mechanism"] = self.kafka_sasl_mechanism
            config["sasl.username"] = self.kafka_username
            config["sasl.password"] = self.kafka_password.get_secret_value()
        if self.kafka_ca_file:
            config["ssl.ca.location"] = self.kafka_ca_file
        if self.kafka_debug:
            config["debug"] = self.kafka_debug
            # Asked for explicitly: shown even when the service logs at info.
            logging.getLogger("librdkafka").setLevel(logging.DEBUG)
        return config


def authentication_failed(err: KafkaError) -> str | None:
    """What to tell the operator when `err` says the cluster refused our credentials (None
    for any other error). librdkafka retries forever, so services must say it loudly."""
    if err.code() != KafkaError._AUTHENTICATION:
        return None
    return (
        "Kafka authentication failed: check KAFKA_USERNAME, KAFKA_PASSWORD and "
        f"KAFKA_SASL_MECHANISM ({err.str()})"
    )


def admin_client(config: dict[str, Any], *, quiet: bool = False) -> AdminClient:
    """An admin client; `quiet` drops librdkafka's connection errors (for waiting on a broker)."""
    config = dict(config)
    if quiet:
        config["logger"] = _QUIET
    return AdminClient(config)


_QUIET = logging.getLogger("librdkafka.quiet")
_QUIET.setLevel(logging.CRITICAL)
_QUIET.propagate = False


def broker_count(admin: AdminClient, timeout: float = 2.0) -> int:
    """Brokers in the cluster metadata, or 0 when the cluster doesn't answer in time."""
    try:
        return len(admin.list_topics(timeout=timeout).brokers)
    except KafkaException:
        return 0


def wait_for_brokers(admin: AdminClient, count: int = 1, timeout: float = 60.0) -> None:
    """Block until `count` brokers answer metadata requests, or raise TimeoutError."""
    deadline = time.monotonic() + timeout
    seen = 0
    while time.monotonic() < deadline:
        seen = broker_count(admin, timeout=min(2.0, max(0.1, deadline - time.monotonic())))
        if seen >= count:
            return
        time.sleep(0.2)
    raise TimeoutError(f"{seen} of {count} Kafka brokers answered within {timeout:.0f}s")


def ensure_topics(
    admin: AdminClient,
    specs: Iterable[TopicSpec[Any]],
    *,
    local: bool,
    replication_factor: int = 1,
    prefix: str = "",
    timeout: float = 30.0,
) -> list[str]:
    """Create missing topics with their contract's partitions and configs; return the new ones.

    Existing topics are left as they are (a warning says when their partition count differs):
    changing partitions of a live topic remaps keys, which is an operator's decision.
    """
    specs = list(specs)
    existing = admin.list_topics(timeout=timeout).topics
    wanted = []
    for spec in specs:
        name = prefix + spec.name
        partitions = spec.local_partitions if local else spec.partitions
        if name in existing:
            have = len(existing[name].partitions)
            if have != partitions:
                log.warning(
                    "topic exists with another partition count",
                    extra={"topic": name, "partitions": have, "expected": partitions},
                )
            continue
        wanted.append(NewTopic(name, partitions, replication_factor, config=dict(spec.config)))
    created = []
    for name, future in (
        admin.create_topics(wanted, operation_timeout=timeout).items() if wanted else []
    ):
        try:
            future.result(timeout)
            created.append(name)
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise
    _wait_for_leaders(admin, created, timeout)
    return created


def set_topic_configs(
    admin: AdminClient, topic: str, configs: Mapping[str, str], timeout: float = 30.0
) -> None:
    """Set configs of an existing topic, leaving its other configs as they are; returns
    once the broker describes the topic with them (a KRaft broker applies a change when
    the controller's metadata reaches it, a moment after the change is accepted)."""
    entries = [
        ConfigEntry(name, value, incremental_operation=AlterConfigOpType.SET)
        for name, value in configs.items()
    ]
    resource = ConfigResource(ResourceType.TOPIC, topic, incremental_configs=entries)
    for future in admin.incremental_alter_configs([resource]).values():
        future.result(timeout)
    deadline = time.monotonic() + timeout
    described = ConfigResource(ResourceType.TOPIC, topic)
    while True:
        current = admin.describe_configs([described])[described].result(timeout)
        if all(name in current and current[name].value == v for name, v in configs.items()):
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"topic {topic} does not show {dict(configs)} after {timeout:g}s")
        time.sleep(0.1)


def _wait_for_leaders(admin: AdminClient, topics: list[str], timeout: float) -> None:
    """New partitions take a moment to elect leaders; producing before that fails."""
    deadline = time.monotonic() + timeout
    while topics and time.monotonic() < deadline:
        metadata = admin.list_topics(timeout=timeout).topics
        if all(
            name in metadata
            and metadata[name].partitions
            and all(p.leader >= 0 for p in metadata[name].partitions.values())
            for name in topics
        ):
            return
        time.sleep(0.1)


class DeliveryReports:
    """Counts producer delivery reports; pass `on_delivery` as produce()'s callback.

    A failed delivery is logged once per error kind per minute (a dead broker would
    otherwise log every message) and counted, optionally in Prometheus counters labelled
    by topic.
    """

    def __init__(self, delivered: Any = None, failed: Any = None) -> None:
        self.delivered = 0
        self.failed = 0
        self.last_error: KafkaError | None = None
        self._delivered_metric = delivered
        self._failed_metric = failed
        self._throttle = Throttle(60.0)

    def on_delivery(self, err: KafkaError | None, msg: Any) -> None:
        topic = msg.topic() if msg is not None else ""
        if err is None:
            self.delivered += 1
            if self._delivered_metric is not None:
                self._delivered_metric.labels(topic=topic).inc()
            return
        self.failed += 1
        self.last_error = err
        if self._failed_metric is not None:
            self._failed_metric.labels(topic=topic).inc()
        if self._throttle.allow(err.code()):
            log.warning("delivery failed", extra={"topic": topic, "error": err.str()})
