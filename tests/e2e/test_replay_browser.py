"""From an alert to the video around it, in a real browser (Debian's Chromium, headless,
driven by Playwright) against the full local stack with sign-in on: a test-pattern camera
that shows a face, another without, the real broker and the gateway. The browser runs in
a time zone far from the machine's, and every time the page shows is checked against it.
Screenshots go to artifacts/e2e/."""

from __future__ import annotations

import urllib.parse
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import cv2
import pytest
from playwright.sync_api import Browser, Page
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from tests.e2e.conftest import ARTIFACTS, Stack, local_stack, shot, wait_until
from tests.fixtures.capture import read_topic
from tests.fixtures.kafka import KafkaUnderTest

FACE_CAMERA = "cam-1"
FPS = 5
LEAD_MS = 3000  # player.js: an alert replays from this long before its detection
# India has one offset all year (no summer time), so Python needs no time-zone database to
# say what the page must show.
ZONE = "Asia/Kolkata"
OFFSET = timezone(timedelta(hours=5, minutes=30))
PLAYER = "document.getElementById('player')"


def local(ms: float) -> str:
    return datetime.fromtimestamp(ms / 1000, OFFSET).strftime("%H:%M:%S")


@pytest.fixture(scope="module")
def stack(kafka: KafkaUnderTest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    face = tmp_path_factory.mktemp("face") / "face.png"
    size = ["--fps", str(FPS), "--test-width", "320", "--test-height", "240"]
    cameras = {
        FACE_CAMERA: [*size, "--test-face", str(face), "--face-every", "3"],
        "cam-2": [*size, "--no-faces"],
    }
    with local_stack(
        kafka,
        face,
        cameras,
        secret="e2e-secret-long-enough-to-sign",
        gateway_flags=["--wall-fps", "3"],
    ) as stack:
        yield stack


@pytest.fixture(scope="module")
def page(browser: Browser, stack: Stack) -> Iterator[Page]:
    context = browser.new_context(
        viewport={"width": 1500, "height": 1300},
        locale="en-GB",
        timezone_id=ZONE,
        accept_downloads=True,
    )
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    # The gateway's Content-Security-Policy must not block anything the player does.
    page.on(
        "console",
        lambda msg: errors.append(msg.text) if "Content Security Policy" in msg.text else None,
    )
    page.goto(stack.login_url())  # the same sign-in as live streams: a session cookie
    page.wait_for_url(stack.base + "/", timeout=20_000)
    yield page
    assert errors == [], errors
    context.close()


def player(page: Page, name: str) -> str:
    return page.evaluate(f"() => {PLAYER}.dataset.{name} || ''")


def wait_for_player(page: Page, condition: str, timeout: float, arg: object = None) -> None:
    """Until `condition` (JS, of the player's dataset `p` and `arg`) holds; on a timeout
    the failure shows the player's state."""
    try:
        wait_until(
            page, f"(arg) => {{ const p = {PLAYER}.dataset; return {condition}; }}", timeout, arg
        )
    except PlaywrightTimeout:
        state = page.evaluate(f"() => ({{...{PLAYER}.dataset}})")
        message = page.locator("#player [data-message]").inner_text()
        raise AssertionError(f"player never had {condition}: {state} {message!r}") from None


def frames_of(stack: Stack, camera: str) -> list[tuple[int, bytes]]:
    """(capture time in ms, JPEG) of every frame of `camera` Kafka holds, oldest first."""
    records = read_topic(stack.kafka, stack.prefix + "video-frames", idle=2.0, timeout=60)
    frames = []
    for message in records:
        if message.key() == camera.encode():
            headers = dict(message.headers() or [])
            frames.append((int(headers["ts"]) // 1_000_000, message.value()))
    return sorted(frames)


def test_clicking_the_newest_face_alert_replays_it_with_the_box_drawn(page: Page) -> None:
    alert = "#alerts li[data-kind=face]"
    wait_until(page, f"() => document.querySelector('{alert}')", 40)
    newest = page.locator(alert).first
    alert_ms = int(newest.get_attribute("data-ts") or 0)
    assert local(alert_ms) in newest.inner_text()
    newest.click()
    wait_for_player(page, "p.firstTs", 15)
    assert player(page, "camera") == FACE_CAMERA
    assert player(page, "mode") == "replay"
    first = int(player(page, "firstTs"))
    assert abs(first - (alert_ms - LEAD_MS)) < 1000, (first, alert_ms)
    # The face box of a frame from the replay, drawn at the time it was detected.
    wait_for_player(page, "+p.faces > 0 && +p.ts < arg", 15, arg=alert_ms + 1500)
    assert int(player(page, "age")) > 1000  # the past, not live
    assert page.locator("#player [data-clock]").inner_text() == local(int(player(page, "ts")))
    shot(page, "7-player-replay-from-alert")


def test_the_timeline_shows_the_window_held_and_the_detection_marks(
    stack: Stack, page: Page
) -> None:
    timeline = page.locator("#player [data-timeline]")
    wait_until(page, f"() => +{PLAYER}.querySelector('[data-timeline]').dataset.faces > 0", 15)
    start = int(timeline.get_attribute("data-start") or 0)
    assert stack.started * 1000 - 5000 < start < stack.started * 1000 + 30_000
    assert int(timeline.get_attribute("data-marks") or 0) > int(
        timeline.get_attribute("data-faces") or 0
    )  # motion marks too
    assert page.locator("#player [data-start-time]").inner_text() == local(start)
    box = timeline.locator("canvas").bounding_box()
    assert box is not None
    page.mouse.move(box["x"] + box["width"] * 0.25, box["y"] + box["height"] / 2)
    cursor = page.locator("#player [data-cursor]")
    assert cursor.is_visible()
    assert cursor.inner_text() == local(int(timeline.get_attribute("data-cursor-ms") or 0))
    timeline.screenshot(path=str(_artifact("8-timeline-marks.png")))
    page.locator("#player figure").screenshot(path=str(_artifact("8-player-timeline.png")))


def test_dragging_the_timeline_sixty_seconds_back_replays_from_then(
    stack: Stack, page: Page
) -> None:
    def held_ms() -> int:
        return int(
            page.evaluate(
                f"() => Date.now() - {PLAYER}.querySelector('[data-timeline]').dataset.start"
            )
        )

    if held_ms() < 75_000:
        page.wait_for_timeout(75_000 - held_ms())
    page.evaluate("() => window.dashboard.player.refreshWindow()")
    canvas = page.locator("#player [data-timeline] canvas").bounding_box()
    assert canvas is not None
    y = canvas["y"] + canvas["height"] / 2

    def x_of(ms_back: int) -> float:
        return float(
            page.evaluate(
                """([back, left, width]) => {
                const el = document.querySelector('#player [data-timeline]');
                const start = +el.dataset.start, end = Date.now();
                return left + (end - back - start) / (end - start) * width;
            }""",
                [ms_back, canvas["x"], canvas["width"]],
            )
        )

    page.mouse.move(x_of(5_000), y)
    page.mouse.down()
    for back in (15_000, 30_000, 45_000, 60_000):
        page.mouse.move(x_of(back), y, steps=3)
    target = page.evaluate("() => Date.now()") - 60_000
    page.mouse.move(x_of(60_000), y)
    page.mouse.up()
    wait_for_player(page, "p.firstTs && +p.frames > 3", 15)
    requested = int(player(page, "requested"))
    assert abs(requested - target) < 1500, requested - target
    first = int(player(page, "firstTs"))
    assert 0 <= first - requested < 1000, first - requested
    assert int(player(page, "age")) > 55_000  # frames from then, paced as captured
    shot(page, "9-player-dragged-back")


def test_back_to_live_shows_frames_less_than_a_second_old(page: Page) -> None:
    page.locator("#player [data-live]").click()
    wait_for_player(page, "p.mode === 'live' && +p.frames > 5 && +p.age < 1000", 15)
    ages = []
    for _ in range(5):
        page.wait_for_timeout(300)
        ages.append(int(player(page, "age")))
    assert max(ages) < 1000, ages
    assert page.locator("#player [data-state]").inner_text() == "Live"


def test_snapshot_downloads_the_frame_on_screen(stack: Stack, page: Page) -> None:
    before = int(player(page, "ts"))
    with page.expect_download() as download:
        page.locator("#player [data-snapshot]").click()
    after = int(player(page, "ts"))
    jpeg = Path(download.value.path()).read_bytes()
    assert download.value.suggested_filename.startswith(f"{FACE_CAMERA}_")
    assert download.value.suggested_filename.endswith(".jpg")
    matches = [ts for ts, frame in frames_of(stack, FACE_CAMERA) if frame == jpeg]
    assert len(matches) == 1  # exactly one frame Kafka holds...
    assert before <= matches[0] <= after  # ...the one on screen when it was clicked
    (ARTIFACTS / "10-snapshot.jpg").write_bytes(jpeg)


def test_a_ten_second_clip_downloads_and_plays(stack: Stack, page: Page, tmp_path: Path) -> None:
    with page.expect_download(timeout=60_000) as download:
        page.locator("#player [data-clip]").click()
    assert download.value.suggested_filename.endswith(".avi")
    query = urllib.parse.parse_qs(urllib.parse.urlparse(download.value.url).query)
    start, end = (_ms(query[name][0]) for name in ("from", "to"))
    assert end - start == 10_000
    path = tmp_path / "clip.avi"
    download.value.save_as(path)
    capture = cv2.VideoCapture(str(path))
    fps, count = capture.get(cv2.CAP_PROP_FPS), 0
    while capture.read()[0]:
        count += 1
    capture.release()
    expected = [ts for ts, _jpeg in frames_of(stack, FACE_CAMERA) if start <= ts < end]
    assert count == len(expected) > 0.8 * FPS * 10
    assert count / fps == pytest.approx(10.0, abs=0.5)


def test_a_moment_kafka_no_longer_holds_is_said_in_words(page: Page) -> None:
    page.evaluate("() => window.dashboard.player.play(Date.now() - 3600 * 1000)")
    message = page.locator("#player [data-message]")
    message.wait_for(state="visible", timeout=15_000)
    assert player(page, "status") == "416"
    text = message.inner_text()
    assert "no longer kept" in text
    start = int(page.evaluate(f"() => {PLAYER}.querySelector('[data-timeline]').dataset.start"))
    assert f"from {local(start)} on" in text or f"from {local(start + 1000)} on" in text, text
    shot(page, "11-player-out-of-retention")
    page.locator("#player [data-live]").click()
    message.wait_for(state="hidden", timeout=5_000)


def test_the_wall_shows_time_since_the_last_detection_and_a_face_badge(page: Page) -> None:
    page.locator("#player [data-close]").click()
    tile = page.locator(f'#wall .tile[data-camera="{FACE_CAMERA}"]')
    wait_until(
        page,
        f"() => document.querySelector('#wall .tile[data-camera=\"{FACE_CAMERA}\"]')"
        ".dataset.face === '1'",
        15,
    )
    assert tile.locator(".badge.face").is_visible()
    assert "detection" in tile.locator(".since").inner_text()
    assert tile.locator(".since").inner_text().endswith("s ago")
    plain = page.locator('#wall .tile[data-camera="cam-2"]')
    assert not plain.locator(".badge.face").is_visible()
    page.locator("#wall").screenshot(path=str(_artifact("12-wall-badges.png")))


def _ms(text: str) -> int:
    return round(
        datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC).timestamp() * 1000
    )


def _artifact(name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS / name
