"""The notifier's settings: flags, `NOTIFIER_*` variables, and the shared KAFKA_*/LOG_* ones."""

from __future__ import annotations

from urllib.parse import urlsplit

from pydantic import SecretStr, field_validator
from rts_common.kafka import KafkaSettings
from rts_common.logs import LoggingSettings
from rts_common.ops import OpsSettings
from rts_common.settings import setting

from rts_notifier.rules import RuleError, parse_rules


class NotifierSettings(KafkaSettings, LoggingSettings, OpsSettings):
    """Read video-detections and push what matters (a face, a person, motion in a zone, a
    camera going offline) to webhooks (JSON, HMAC-signed, retried, dead-lettered) and to
    an MQTT broker in Frigate's topic layout."""

    env_prefix = "NOTIFIER_"
    program = "notifier"

    rules: str = setting(
        "*/*=face,person,offline",
        "What is pushed: 'camera/zone=kind,kind[;...]', '*' for any camera or zone "
        "(kinds: motion, face, person, offline); e.g. '*/*=face;lobby/door=motion,person'",
    )
    webhooks: str = setting(
        "", "Webhook URLs, comma-separated: each event is POSTed to each as JSON"
    )
    webhook_secret: SecretStr = setting(
        SecretStr(""),
        "Key of the HMAC-SHA256 signature in X-RTS-Signature (sha256=<hex> of "
        "'<X-RTS-Timestamp>.<body>'); empty: unsigned",
    )
    webhook_timeout: float = setting(5.0, "Seconds a webhook may take to answer", gt=0, le=60)
    mqtt_host: str = setting("", "MQTT broker host; empty: no MQTT")
    mqtt_port: int = setting(1883, "MQTT broker port", ge=1, le=65535)
    mqtt_username: str = setting("", "MQTT user name")
    mqtt_password: SecretStr = setting(SecretStr(""), "MQTT password")
    mqtt_topic_prefix: str = setting(
        "rts",
        "First level of every MQTT topic (<prefix>/events, <prefix>/<camera>/<label>...); "
        "'frigate' lets automations written for Frigate's topics read these",
        pattern=r"^[A-Za-z0-9_-]{1,64}$",
    )
    gateway_url: str = setting(
        "http://127.0.0.1:8000",
        "The dashboard's address as people reach it: events link to "
        "<url>/snapshot/<camera>.jpg?at=<time> and the replay",
    )
    event_gap: float = setting(
        10.0,
        "Seconds without a detection of the kind that end an event (detectors skip frames)",
        gt=0,
        le=3600,
    )
    max_events_per_minute: float = setting(
        6.0, "New events per camera and minute at most; more are dropped and counted", gt=0
    )
    retry_first: float = setting(1.0, "Seconds before the first retry of a delivery", gt=0)
    retry_max: float = setting(60.0, "Longest wait between retries (doubling up to it)", gt=0)
    max_attempts: int = setting(
        10, "Attempts per delivery before it is dead-lettered", ge=1, le=1000
    )
    queue_max: int = setting(
        1000,
        "Deliveries waiting per receiver; when full, reading pauses (nothing is dropped)",
        ge=1,
        le=1_000_000,
    )
    group_id: str = setting("notifier", "Consumer group of video-detections")
    shutdown_timeout: float = setting(
        10.0, "Seconds to finish deliveries under way on shutdown", ge=0, le=300
    )

    @field_validator("rules")
    @classmethod
    def _rules(cls, value: str) -> str:
        try:
            parse_rules(value)
        except RuleError as exc:
            raise ValueError(str(exc)) from None
        return value

    @field_validator("webhooks")
    @classmethod
    def _urls(cls, value: str) -> str:
        for url in (u.strip() for u in value.split(",") if u.strip()):
            if urlsplit(url).scheme not in ("http", "https") or not urlsplit(url).hostname:
                raise ValueError(f"webhook {url!r} is not an http(s):// URL")
        return value

    @property
    def webhook_urls(self) -> list[str]:
        return [u.strip() for u in self.webhooks.split(",") if u.strip()]
