import pytest
from rts_common.pacing import TokenBucket


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize("rate", [1.0, 7.5, 200.0, 25_000.0])
def test_the_bucket_holds_the_rate_over_seconds(rate: float) -> None:
    clock = FakeClock()
    bucket = TokenBucket(rate, capacity=max(1.0, rate), clock=clock)
    granted = 0
    for _ in range(1000):  # 10 s in 10 ms steps, as the run loop paces
        clock.now += 0.01
        granted += bucket.take(1_000_000)
    assert abs(granted - 1 - rate * 10) <= 1  # plus the first token, granted at once
    assert bucket.dropped() == 0


def test_a_stall_longer_than_the_capacity_drops_tokens_and_counts_them() -> None:
    clock = FakeClock()
    bucket = TokenBucket(1000.0, capacity=1000.0, clock=clock)
    assert bucket.take(10) == 1
    clock.now += 5.0
    assert bucket.take(1_000_000) == 1000  # a burst of at most one second's worth
    assert bucket.dropped() == 4000
    assert bucket.dropped() == 0


def test_wait_time_says_when_a_batch_is_ready() -> None:
    clock = FakeClock()
    bucket = TokenBucket(100.0, capacity=100.0, clock=clock)
    bucket.take(1)
    assert bucket.wait_time(10) == pytest.approx(0.1)
    clock.now += 0.05
    assert bucket.wait_time(10) == pytest.approx(0.05)
    clock.now += 0.05
    assert bucket.wait_time(10) == pytest.approx(0.0, abs=1e-9)
    assert bucket.take(3) == 3


def test_nonsense_rates_are_refused() -> None:
    with pytest.raises(ValueError, match="rate"):
        TokenBucket(0.0, 1.0)
