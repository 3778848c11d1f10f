"""Delivery accounting and readiness of the producer wrapper (no broker is contacted)."""

from confluent_kafka import KafkaError
from rts_eventsim.kafka import Publisher, producer_config
from rts_eventsim.metrics import EventSimMetrics
from rts_eventsim.settings import EventSimSettings

SETTINGS = EventSimSettings.load(
    ["--kafka-bootstrap", "127.0.0.1:1", "--kafka-topic-prefix", "t."], environ={}
)


def test_the_producer_is_idempotent_acks_all_compressed_and_batched() -> None:
    config = producer_config(SETTINGS.model_copy(update={"compression": "zstd"}), print)
    assert config["enable.idempotence"] is True
    assert config["acks"] == "all"
    assert config["compression.type"] == "zstd"
    assert config["linger.ms"] == 20
    assert config["partitioner"] == "murmur2_random"


def test_deliveries_are_counted_by_event_type_and_failures_by_error() -> None:
    metrics = EventSimMetrics.create()
    publisher = Publisher(SETTINGS, metrics)
    assert publisher.topic == "t.playback-events"
    publisher._on_delivery["pause"](None, None)
    publisher._on_delivery["pause"](None, None)
    publisher._on_delivery["stop"](KafkaError(KafkaError._MSG_TIMED_OUT), None)
    sample = metrics.registry.get_sample_value
    assert sample("eventsim_events_total", {"event_type": "pause"}) == 2
    assert sample("eventsim_events_total", {"event_type": "play"}) == 0
    assert sample("eventsim_delivery_errors_total", {"error": "_MSG_TIMED_OUT"}) == 1
    assert (publisher.delivered, publisher.failed) == (2, 1)


def test_readiness_needs_the_topic_a_broker_and_no_fatal_error() -> None:
    publisher = Publisher(SETTINGS, EventSimMetrics.create())
    assert publisher.readiness()[0] is False
    publisher.topic_found = True
    assert publisher.readiness()[0] is True
    publisher._on_error(KafkaError(KafkaError._ALL_BROKERS_DOWN))
    ready, details = publisher.readiness()
    assert not ready
    assert details["waiting"] == "for a broker"
    publisher._on_delivery["play"](None, None)
    assert publisher.readiness()[0] is True
    publisher._on_error(KafkaError(KafkaError._FENCED, "fenced", fatal=True))
    ready, details = publisher.readiness()
    assert not ready
    assert "fatal" in details
