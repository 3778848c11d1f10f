"""Where events go: webhooks (JSON, HMAC-signed) and an MQTT broker (Frigate's layout).

A receiver sends one message or raises DeliveryError saying whether trying again can
help; retrying, backing off and dead-lettering are the dispatcher's (dispatch.py).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import threading
import time
import urllib.error
import urllib.request
from abc import ABC, abstractmethod
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from rts_common.net import public_url

from rts_notifier.rules import Message

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-RTS-Signature"
TIMESTAMP_HEADER = "X-RTS-Timestamp"


class DeliveryError(Exception):
    """A message not delivered. `reason` is a bounded metric label; `retry` whether
    trying again later can help (a receiver down: yes; a request it refuses: no)."""

    def __init__(self, reason: str, detail: str, *, retry: bool) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason, self.detail, self.retry = reason, detail, retry


class Receiver(ABC):
    name: str  # a metric label: webhook-1, webhook-2, mqtt
    where: str  # for logs and dead letters, without credentials

    @abstractmethod
    def send(self, message: Message) -> None:
        """Deliver `message`, or raise DeliveryError."""

    def close(self) -> None:  # noqa: B027 - most receivers hold nothing open
        pass


def signature(secret: str, timestamp: str, body: bytes) -> str:
    """`sha256=<hex>` of HMAC-SHA256(secret, "<timestamp>.<body>"): the timestamp is
    signed too, so a receiver can refuse a replayed old request."""
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return f"sha256={mac.hexdigest()}"


class Webhook(Receiver):
    def __init__(self, index: int, url: str, secret: str, timeout: float) -> None:
        self.name = f"webhook-{index}"
        self.url, self.where = url, public_url(url)
        self._secret, self._timeout = secret, timeout

    def send(self, message: Message) -> None:
        body = json.dumps(message.as_json()).encode()
        timestamp = str(int(time.time()))
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "rts-notifier",
            "X-RTS-Event": message.type,
            TIMESTAMP_HEADER: timestamp,
        }
        if self._secret:
            headers[SIGNATURE_HEADER] = signature(self._secret, timestamp, body)
        request = urllib.request.Request(self.url, body, headers, method="POST")  # noqa: S310
        try:
            with urllib.request.urlopen(request, timeout=self._timeout) as response:  # noqa: S310
                response.read()
        except urllib.error.HTTPError as err:
            # The receiver is there and refuses this request: only its being busy or
            # broken for a moment is worth another try.
            retry = err.code in (408, 425, 429) or err.code >= 500
            raise DeliveryError(
                f"http_{err.code}", f"answered HTTP {err.code}", retry=retry
            ) from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise DeliveryError("unreachable", str(reason), retry=True) from None


class Mqtt(Receiver):
    """Frigate's topics under `prefix`: `<prefix>/events` (every message, QoS 1),
    `<prefix>/<camera>/<label>` and `<prefix>/<zone>/<label>` (how many such events are
    open, retained), `<prefix>/available` (online/offline, the will)."""

    name = "mqtt"

    def __init__(
        self, host: str, port: int, prefix: str, username: str = "", password: str = ""
    ) -> None:
        self.where = f"mqtt://{host}:{port}/{prefix}"
        self.prefix = prefix
        self.connected = threading.Event()
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="", clean_session=True)
        if username:
            client.username_pw_set(username, password)
        client.will_set(f"{prefix}/available", "offline", qos=1, retain=True)
        client.reconnect_delay_set(min_delay=1, max_delay=10)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        self._client = client
        client.connect_async(host, port, keepalive=30)
        client.loop_start()

    def _on_connect(
        self, client: mqtt.Client, _data: Any, _flags: Any, reason: Any, _p: Any
    ) -> None:
        if reason.is_failure:
            log.warning("MQTT broker refused the connection", extra={"reason": str(reason)})
            return
        self.connected.set()
        client.publish(f"{self.prefix}/available", "online", qos=1, retain=True)
        log.info("connected to the MQTT broker", extra={"broker": self.where})

    def _on_disconnect(self, *_args: Any) -> None:
        if self.connected.is_set():
            log.warning("MQTT broker connection lost", extra={"broker": self.where})
        self.connected.clear()

    def send(self, message: Message) -> None:
        if not self.connected.is_set():
            raise DeliveryError("unreachable", "not connected to the broker", retry=True)
        publishes: list[tuple[str, str, bool]] = [
            (f"{self.prefix}/events", json.dumps(message.as_json()), False)
        ]
        after, before = message.after, message.before
        open_now = message.type != "end"
        publishes.append((f"{self.prefix}/{after.camera}/{after.label}", str(int(open_now)), True))
        zones_now = set(after.current_zones) if open_now else set()
        for zone in zones_now | set(before.current_zones):
            publishes.append(
                (f"{self.prefix}/{zone}/{after.label}", str(int(zone in zones_now)), True)
            )
        for topic, payload, retain in publishes:
            info = self._client.publish(topic, payload, qos=1, retain=retain)
            try:
                info.wait_for_publish(timeout=5)
            except (RuntimeError, ValueError) as exc:
                raise DeliveryError("unreachable", str(exc), retry=True) from None
            if not info.is_published():
                raise DeliveryError("timeout", "the broker did not acknowledge", retry=True)

    def close(self) -> None:
        if self.connected.is_set():
            self._client.publish(f"{self.prefix}/available", "offline", qos=1, retain=True)
        self._client.disconnect()
        self._client.loop_stop()
