"""What the browser tests share: the full local stack on the test's own topics (the real
broker, capture test patterns, event-sim, the gateway), Debian's Chromium driven by
Playwright, and the screenshots they leave in artifacts/e2e/."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, sync_playwright
from rts_capture.sample import write_face
from rts_common.contracts import TOPICS
from rts_common.signin import Authenticator

from tests.fixtures.kafka import KafkaUnderTest
from tests.fixtures.processes import (
    ServiceGroup,
    ServiceProcess,
    kafka_env,
    start_capture,
    start_event_sim,
    start_gateway,
)

ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts" / "e2e"
CHROMIUM = "/usr/bin/chromium"


@dataclass
class Stack:
    port: int
    prefix: str
    kafka: KafkaUnderTest
    group: ServiceGroup
    gateway_flags: Sequence[str] = ()
    secret: str = ""
    gateway: ServiceProcess | None = None
    started: float = field(default=0.0)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start_gateway(self) -> ServiceProcess:
        self.gateway = start_gateway(self.group, *self.gateway_flags, port=self.port)
        self.gateway.wait_ready(timeout=60)
        return self.gateway

    def start_event_sim(self, *flags: str) -> ServiceProcess:
        return start_event_sim(self.group, *flags)

    def login_url(self) -> str:
        """A one-time operator's sign-in link, as `gateway login-url --role operator` makes
        them (the token in the fragment, which the page trades by POST)."""
        auth = Authenticator(self.secret, login_ttl=600, session_ttl=3600)
        return f"{self.base}/login#token={auth.login_token('e2e', role='operator')}"


@contextmanager
def local_stack(
    kafka: KafkaUnderTest,
    face: Path,
    cameras: Mapping[str, Sequence[str]],
    *,
    gateway_flags: Sequence[str] = (),
    secret: str = "",
    **env: str,
) -> Iterator[Stack]:
    """The platform on fresh topics: a capture test pattern per camera (its extra flags;
    `face` is the portrait that `--test-face` flags may point at), then the gateway, with
    sign-in when `secret` is given."""
    prefix = f"e2e{uuid.uuid4().hex[:8]}."
    kafka.create_topics(list(TOPICS), prefix)
    assert write_face(face), "scikit-image's astronaut portrait is needed for the face camera"
    auth = {"GATEWAY_AUTH_SECRET": secret} if secret else {}
    with ServiceGroup(kafka_env(kafka.bootstrap, prefix, **auth, **env)) as group:
        stack = Stack(group.port(), prefix, kafka, group, gateway_flags, secret, None, time.time())
        for camera, flags in cameras.items():
            start_capture(group, camera, "--source", "test", *flags)
        stack.start_gateway()
        yield stack


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                *"--no-sandbox --disable-gpu --disable-quic".split(),
                *"--no-first-run".split(),
                *"--disable-background-networking".split(),
                *"--disable-component-update --disable-sync".split(),
            ],
        )
        yield browser
        browser.close()


def shot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def wait_until(page: Page, js: str, timeout: float = 20.0, arg: Any = None) -> Any:
    return page.wait_for_function(js, arg=arg, timeout=timeout * 1000).json_value()
