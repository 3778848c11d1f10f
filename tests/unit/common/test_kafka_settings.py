from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient
from rts_common.contracts import VIDEO_FRAMES
from rts_common.kafka import KafkaSettings


def test_plaintext_config_has_no_credentials() -> None:
    config = KafkaSettings().client_config("svc")
    assert config["bootstrap.servers"] == "127.0.0.1:9092"
    assert config["security.protocol"] == "PLAINTEXT"
    assert "sasl.username" not in config


def test_sasl_ssl_config_carries_credentials_and_ca() -> None:
    settings = KafkaSettings.load(
        [],
        environ={
            "KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
            "KAFKA_USERNAME": "gateway",
            "KAFKA_PASSWORD": "s3cret",
            "KAFKA_CA_FILE": "/etc/kafka/ca.crt",
        },
    )
    config = settings.client_config("gateway")
    assert config["sasl.mechanism"] == "SCRAM-SHA-512"
    assert config["sasl.username"] == "gateway"
    assert config["sasl.password"] == "s3cret"
    assert config["ssl.ca.location"] == "/etc/kafka/ca.crt"


def test_topic_prefix_applies_to_contract_names() -> None:
    assert KafkaSettings(kafka_topic_prefix="test.").topic_name(VIDEO_FRAMES) == "test.video-frames"


def test_every_kind_of_client_accepts_the_shared_config() -> None:
    """librdkafka refuses a property it does not know when the client is made: the
    rebootstrap settings need librdkafka 2.10 or later."""
    config = KafkaSettings(kafka_bootstrap="127.0.0.1:1").client_config("svc")
    for make in (Producer, AdminClient, lambda c: Consumer({**c, "group.id": "g"})):
        client = make(config)
        assert client is not None
