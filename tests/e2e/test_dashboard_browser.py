"""The dashboard in a real browser (Debian's Chromium, headless, driven by Playwright)
against the full local stack: the real broker, eight capture test patterns, event-sim and
the gateway. Screenshots go to artifacts/e2e/."""

from __future__ import annotations

import collections
import json
import time
import uuid
from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, Page
from rts_common.signin import Authenticator

from tests.e2e.conftest import Stack, local_stack, shot, wait_until
from tests.fixtures.capture import read_topic
from tests.fixtures.kafka import KafkaUnderTest
from tests.fixtures.processes import start_gateway

CAMERAS = [f"cam-{i}" for i in range(1, 9)]
EVENTS = 1500


@pytest.fixture(scope="module")
def stack(kafka: KafkaUnderTest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    face = tmp_path_factory.mktemp("face") / "face.png"
    size = ["--fps", "5", "--test-width", "320", "--test-height", "240"]
    cameras = {
        camera: [*size, "--test-face", str(face), "--face-every", "3"]
        if camera == "cam-1"
        else [*size, "--no-faces"]
        for camera in CAMERAS
    }
    gateway = ["--wall-fps", "3", "--wall-width", "240", "--event-sample-rate", "50"]
    with local_stack(
        kafka,
        face,
        cameras,
        gateway_flags=gateway,
        GATEWAY_GROUP_ID=f"e2e-{uuid.uuid4().hex[:8]}",
        GATEWAY_EVENTS_START="earliest",
    ) as stack:
        yield stack


@pytest.fixture(scope="module")
def page(browser: Browser, stack: Stack) -> Iterator[Page]:
    page = browser.new_page(viewport={"width": 1600, "height": 1400})
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    # The gateway's Content-Security-Policy must not block anything the dashboard does.
    page.on(
        "console",
        lambda msg: errors.append(msg.text) if "Content Security Policy" in msg.text else None,
    )
    page.goto(stack.base + "/")
    yield page
    assert errors == [], errors
    page.close()


def kpi(page: Page, name: str) -> str:
    return page.locator(f'[data-kpi="{name}"]').get_attribute("data-value") or ""


def test_the_page_connects_and_shows_events_within_two_seconds(stack: Stack, page: Page) -> None:
    wait_until(page, "() => document.getElementById('status').dataset.state === 'connected'")
    stack.start_event_sim("--rate", "100", "--count", str(EVENTS), "--seed", "5", "--users", "3000")
    wait_until(page, "() => document.querySelectorAll('#events .evt').length >= 20")
    p95 = page.evaluate("() => window.dashboard.eventLatency.percentile(0.95)")
    assert p95 is not None
    assert p95 < 2000, p95
    first = page.locator("#events .evt").first
    assert first.locator("strong").inner_text() in {
        "PLAY",
        "PAUSE",
        "STOP",
        "SEEK",
        "BUFFER_START",
        "BUFFER_END",
    }
    assert "User: user" in first.locator(".meta").inner_text()
    shot(page, "1-events")


def test_qoe_numbers_match_a_count_taken_from_kafka(stack: Stack, page: Page) -> None:
    sim = next(p for p in stack.group.started if p.name == "event-sim")
    assert sim.wait_exit(60) == 0, sim.log()
    records = read_topic(stack.kafka, stack.prefix + "playback-events", count=EVENTS, timeout=30)
    assert len(records) == EVENTS
    events = [json.loads(r.value()) for r in records]
    by_type = collections.Counter(e["event_type"] for e in events)
    starts = sum(1 for e in events if e.get("startup_ms") is not None)
    failures = sum(1 for e in events if e.get("reason") == "startup_failure")
    wait_until(
        page,
        "(n) => document.querySelector('[data-kpi=events_total]').dataset.value == n",
        timeout=20,
        arg=str(EVENTS),
    )
    assert kpi(page, "events_total") == str(EVENTS)
    for kind, count in by_type.items():
        assert kpi(page, f"events_{kind}") == str(count), kind
    assert kpi(page, "starts_total") == str(starts)
    assert kpi(page, "startup_failures") == str(failures)
    assert starts > 0
    assert float(kpi(page, "startup_p50")) > 0
    assert kpi(page, "partitions") == "3"
    devices = page.locator("#devices tr").count()
    assert devices == 3
    shot(page, "2-qoe")


def test_the_camera_wall_shows_eight_live_tiles_with_detection_boxes(
    stack: Stack, page: Page
) -> None:
    wait_until(page, "() => document.querySelectorAll('#wall .tile[data-frames]').length >= 8", 30)
    before = page.evaluate(
        "() => [...document.querySelectorAll('#wall .tile')].map("
        "t => [t.dataset.camera, +(t.dataset.frames || 0)])"
    )
    time.sleep(3)
    after = dict(
        page.evaluate(
            "() => [...document.querySelectorAll('#wall .tile')].map("
            "t => [t.dataset.camera, +(t.dataset.frames || 0)])"
        )
    )
    for camera, frames in before:
        assert after[camera] > frames, f"{camera} did not update"
    assert set(CAMERAS) <= set(after)
    wait_until(
        page,
        "() => [...document.querySelectorAll('#wall .tile')].some("
        "t => +(t.dataset.boxes || 0) > 0)",
        20,
    )
    wait_until(
        page,
        "() => [...document.querySelectorAll('#alerts li')].some("
        "li => li.textContent.includes('face'))",
        30,
    )
    shot(page, "3-wall")


def test_clicking_a_tile_opens_its_live_stream_in_the_player(stack: Stack, page: Page) -> None:
    page.locator('#wall .tile[data-camera="cam-2"]').click()
    player = page.locator("#player")
    assert player.is_visible()
    assert player.get_attribute("data-camera") == "cam-2"
    wait_until(page, "() => +document.getElementById('player').dataset.frames > 2", 15)
    assert page.evaluate("() => document.querySelector('#player canvas').width") == 320
    assert player.get_attribute("data-mode") == "live"
    shot(page, "4-stream")
    page.locator("#player [data-close]").click()
    assert not player.is_visible()


def test_the_page_recovers_after_the_gateway_restarts(stack: Stack, page: Page) -> None:
    stack.start_event_sim("--rate", "20", "--seed", "9", "--users", "500")
    assert stack.gateway is not None
    started = time.monotonic()
    assert stack.gateway.terminate() == 0, stack.gateway.log()
    assert time.monotonic() - started < 10
    wait_until(page, "() => document.getElementById('status').dataset.state !== 'connected'")
    shot(page, "5-disconnected")
    feed = page.evaluate("() => window.dashboard.feed.count")
    frames = page.evaluate("() => +document.querySelector('#wall .tile').dataset.frames")
    stack.start_gateway()
    wait_until(page, "() => document.getElementById('status').dataset.state === 'connected'", 30)
    wait_until(page, "(n) => window.dashboard.feed.count > n + 5", 30, arg=feed)
    wait_until(
        page, "(n) => +document.querySelector('#wall .tile').dataset.frames > n + 3", 30, arg=frames
    )
    shot(page, "6-reconnected")


def test_a_login_link_signs_in_and_signing_out_ends_the_session(
    stack: Stack, browser: Browser
) -> None:
    secret = "e2e-sign-in-secret-0123456789"
    gateway = start_gateway(
        stack.group, "--wall-fps", "2", env={"GATEWAY_AUTH_SECRET": secret}, name="signed-gateway"
    )
    gateway.wait_ready(timeout=60)
    link = Authenticator(secret, login_ttl=60, session_ttl=600).login_token(
        "e2e", cameras=["cam-1", "cam-2"]
    )
    page = browser.new_page(viewport={"width": 1600, "height": 1000})
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on(
        "console",
        lambda msg: errors.append(msg.text) if "Content Security Policy" in msg.text else None,
    )
    try:
        page.goto(f"{gateway.url}/login#token={link}")
        page.wait_for_url(f"{gateway.url}/", timeout=20_000)
        wait_until(page, "() => document.getElementById('status').dataset.state === 'connected'")
        # The link covered two cameras: the wall shows those and no other.
        wait_until(page, "() => document.querySelectorAll('#wall .tile[data-frames]').length >= 2")
        time.sleep(2)
        tiles = page.evaluate(
            "() => [...document.querySelectorAll('#wall .tile')].map(t => t.dataset.camera).sort()"
        )
        assert tiles == ["cam-1", "cam-2"]
        assert "#token=" not in page.url
        shot(page, "13-signed-in")
        page.locator("header form button").click()
        page.wait_for_load_state()
        assert "Sign in needed" in page.content()
        page.goto(f"{gateway.url}/")
        assert "Sign in needed" in page.content()
        assert errors == [], errors
    finally:
        page.close()
        gateway.terminate()
