import threading
import time
from collections.abc import Callable

import pytest
from rts_capture.metrics import CaptureMetrics
from rts_capture.reader import (
    Backoff,
    Captured,
    Feed,
    Mailbox,
    Opened,
    RateCap,
    Schedule,
    SourceHealth,
    SourceReader,
    sequence,
)
from rts_capture.sources import Source, SourceError

from tests.unit.capture.conftest import FakeSource, sample


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_mailbox_keeps_only_the_newest_item_and_says_what_it_replaced() -> None:
    box: Mailbox[int] = Mailbox()
    assert box.put(1) is None
    assert box.put(2) == 1
    assert box.get(0) == 2
    assert box.get(0) is None


def test_a_closed_mailbox_hands_out_what_is_left_then_reports_the_end() -> None:
    box: Mailbox[int] = Mailbox()
    box.put(7)
    box.close()
    assert not box.ended
    assert box.get(5) == 7
    started = time.monotonic()
    assert box.get(5) is None
    assert time.monotonic() - started < 1
    assert box.ended


def test_backoff_doubles_up_to_its_cap_and_starts_over_after_a_reset() -> None:
    backoff = Backoff(0.5, 4.0)
    assert [backoff.next() for _ in range(6)] == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    backoff.reset()
    assert backoff.next() == 0.5


def test_schedule_slots_do_not_drift_when_a_frame_is_late() -> None:
    clock = FakeClock()
    schedule = Schedule(10, clock)
    assert schedule.delay() == 0
    schedule.advance()  # frame 0 at t=100.0
    assert schedule.delay() == pytest.approx(0.1)
    clock.now = 100.13  # frame 1 read 30 ms late
    schedule.advance()
    assert schedule.delay() == pytest.approx(0.07)  # frame 2 still due at 100.2


def test_schedule_restarts_from_now_after_a_long_stall() -> None:
    clock = FakeClock()
    schedule = Schedule(10, clock)
    schedule.advance()
    clock.now = 105.0
    schedule.advance()
    assert schedule.delay() == pytest.approx(0.1)


def test_rate_cap_admits_a_steady_share_of_a_faster_source() -> None:
    clock = FakeClock()
    cap = RateCap(10, clock)
    admitted = 0
    for i in range(300):  # 10 s of a 30 fps camera with a little jitter
        clock.now = 100 + i / 30 + (0.002 if i % 2 else -0.002)
        admitted += cap.admit()
    assert 98 <= admitted <= 102


def _reader(
    source_factory: Callable[[], Source],
    metrics: CaptureMetrics,
    out: Mailbox[Captured],
    **kwargs: object,
) -> tuple[SourceReader, SourceHealth]:
    health = SourceHealth(metrics, "cam", "fake")
    reader = SourceReader(
        source_factory,
        out,
        health,
        metrics,
        sequence(),
        backoff=Backoff(0.01, 0.05),
        **kwargs,  # type: ignore[arg-type]
    )
    return reader, health


def _drain(out: Mailbox[Captured], until: Callable[[list[Captured]], bool]) -> list[Captured]:
    got: list[Captured] = []
    deadline = time.monotonic() + 10
    while not until(got) and time.monotonic() < deadline:
        item = out.get(0.05)
        if item is not None:
            got.append(item)
        elif out.ended:
            break
    return got


def test_a_file_is_read_once_in_order_and_then_ends(metrics: CaptureMetrics) -> None:
    out: Mailbox[Captured] = Mailbox()
    source = FakeSource(20, fps=100)
    reader, health = _reader(lambda: source, metrics, out)
    reader.start()
    frames = _drain(out, lambda got: False)
    # The mailbox holds the newest frame only: a busy machine may skip some, never reorder.
    seqs = [f.seq for f in frames]
    assert seqs == sorted(set(seqs)), seqs
    assert seqs[-1] == 19
    assert [int(f.image[0, 0, 0]) for f in frames] == [seq + 1 for seq in seqs]
    assert out.ended
    assert source.closed
    assert health.up


def test_a_file_is_paced_at_its_own_frame_rate(metrics: CaptureMetrics) -> None:
    out: Mailbox[Captured] = Mailbox()
    reader, _ = _reader(lambda: FakeSource(11, fps=50), metrics, out)
    started = time.monotonic()
    reader.start()
    frames = _drain(out, lambda got: False)
    elapsed = time.monotonic() - started
    assert frames[-1].seq == 10
    # Ten intervals of 20 ms: never faster (the upper bound only catches a hang).
    assert 0.19 <= elapsed < 3.0
    first, last = frames[0], frames[-1]
    assert (last.ts_ns - first.ts_ns) / 1e9 >= 0.019 * (last.seq - first.seq)


def test_loop_plays_the_file_again_with_continuing_frame_numbers(
    metrics: CaptureMetrics,
) -> None:
    out: Mailbox[Captured] = Mailbox()
    opened: list[FakeSource] = []

    def open_source() -> Source:
        opened.append(FakeSource(5, fps=200))
        return opened[-1]

    reader, _ = _reader(open_source, metrics, out, loop=True)
    reader.start()
    # The mailbox keeps only the newest frame, so a busy machine may skip some: what
    # matters is that numbers never start over when the file does (a third pass is 10+).
    frames = _drain(out, lambda got: bool(got) and got[-1].seq >= 11)
    reader.retire()
    seqs = [f.seq for f in frames]
    assert seqs == sorted(set(seqs)), seqs
    assert seqs[-1] >= 11, seqs
    assert len(opened) >= 3
    assert sample(metrics, "capture_source_failures_total", reason="read_failed") == 0


def test_a_source_that_fails_to_open_is_retried_with_backoff_and_recovers(
    metrics: CaptureMetrics, caplog: pytest.LogCaptureFixture
) -> None:
    out: Mailbox[Captured] = Mailbox()
    attempts: list[int] = []

    def open_source() -> Source:
        attempts.append(1)
        if len(attempts) <= 3:
            raise SourceError("camera unplugged")
        return FakeSource(1000, finite=False, fps=200)

    reader, health = _reader(open_source, metrics, out)
    reader.start()
    frames = _drain(out, lambda got: len(got) >= 3)
    reader.retire()
    assert len(frames) == 3
    assert health.up
    assert sample(metrics, "capture_source_failures_total", reason="open_failed") == 3
    lost = [r for r in caplog.records if r.getMessage() == "source lost"]
    # The same failure again within a minute is counted (above), not logged again.
    assert [r.retry_in_s for r in lost] == [0.01]  # type: ignore[attr-defined]
    assert not [r for r in caplog.records if r.getMessage() == "source still lost"]
    assert all(r.detail == "camera unplugged" for r in lost)  # type: ignore[attr-defined]
    assert any(r.getMessage() == "source recovered" for r in caplog.records)


def test_a_live_source_that_stops_is_reported_and_reopened(metrics: CaptureMetrics) -> None:
    out: Mailbox[Captured] = Mailbox()
    opened: list[FakeSource] = []

    def open_source() -> Source:
        opened.append(FakeSource(3, finite=False, fps=None))
        return opened[-1]

    reader, _ = _reader(open_source, metrics, out)
    reader.start()
    frames = _drain(out, lambda got: len(opened) >= 3 and len(got) >= 3)
    reader.retire()
    assert len(opened) >= 3
    assert sample(metrics, "capture_source_failures_total", reason="read_failed") >= 2
    assert sample(metrics, "capture_source_reopens_total") >= 2
    assert [f.seq for f in frames] == sorted(f.seq for f in frames)


def test_frames_the_encoder_did_not_take_are_counted_as_behind(
    metrics: CaptureMetrics,
) -> None:
    out: Mailbox[Captured] = Mailbox()
    reader, _ = _reader(lambda: FakeSource(10, fps=1000), metrics, out)
    reader.start()
    assert reader.join(5)
    assert out.get(0) is not None  # only the newest is left
    assert sample(metrics, "capture_frames_dropped_total", reason="behind") == 9


def test_watchdog_flips_health_on_a_hung_read_and_reads_from_a_new_handle(
    metrics: CaptureMetrics,
) -> None:
    out: Mailbox[Captured] = Mailbox()
    health = SourceHealth(metrics, "cam", "fake")
    handles: list[FakeSource] = []

    def open_source() -> Source:
        # The first handle hangs in read() after 5 frames, like an unplugged camera.
        handles.append(
            FakeSource(10_000, finite=False, fps=200, hang_after=5 if not handles else None)
        )
        return handles[-1]

    backoff = Backoff(0.01, 0.05)
    seq = sequence()

    def make_reader(first: Opened | None, delay: float) -> SourceReader:
        return SourceReader(
            open_source, out, health, metrics, seq, backoff=backoff, first=first, delay=delay
        )

    feed = Feed(make_reader, out, health, backoff, stall_timeout=0.3)
    seen_down = threading.Event()
    frames: list[Captured] = []
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not (seen_down.is_set() and len(frames) > 10):
        item = feed.next(0.02)
        if not health.up and health.reason == "stalled":
            seen_down.set()
        if item is not None:
            frames.append(item)
    feed.close()
    handles[0].unblock.set()
    assert seen_down.is_set()
    assert feed.abandoned == 1
    assert len(handles) == 2
    assert health.up
    assert sample(metrics, "capture_source_failures_total", reason="stalled") == 1
    assert [f.seq for f in frames] == sorted(f.seq for f in frames)
    time.sleep(0.1)
    assert handles[0].closed  # released once its read returned
