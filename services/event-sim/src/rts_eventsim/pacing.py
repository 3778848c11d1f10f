"""The rate of a paced run: a token bucket that holds `rate` over seconds.

The run sleeps until a batch of tokens has accumulated (about 10 ms worth) and then
sends that many events at once, instead of sleeping before every event: the average
rate is exact, and the cost of sleeping does not grow with the rate. Tokens beyond
`capacity` (a process or broker that fell more than that far behind) are dropped and
counted, and the simulated clock skips them, so timestamps stay near the wall clock.
"""

from __future__ import annotations

import time
from collections.abc import Callable


class TokenBucket:
    def __init__(
        self, rate: float, capacity: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if rate <= 0 or capacity < 1:
            raise ValueError("rate must be positive and capacity at least one token")
        self.rate = rate
        self.capacity = capacity
        self._clock = clock
        self._last = clock()
        self._tokens = 1.0  # the first event goes out at once
        self._overflow = 0.0

    def restart(self) -> None:
        """Start afresh from now: one token, nothing dropped."""
        self._last = self._clock()
        self._tokens = 1.0
        self._overflow = 0.0

    def _refill(self) -> None:
        now = self._clock()
        self._tokens += (now - self._last) * self.rate
        self._last = now
        if self._tokens > self.capacity:
            self._overflow += self._tokens - self.capacity
            self._tokens = self.capacity

    def take(self, most: int) -> int:
        """Up to `most` whole tokens available now, consumed."""
        self._refill()
        granted = min(most, int(self._tokens))
        self._tokens -= granted
        return granted

    def dropped(self) -> int:
        """Whole tokens lost to the capacity since the last call."""
        whole = int(self._overflow)
        self._overflow -= whole
        return whole

    def wait_time(self, tokens: float) -> float:
        """Seconds until `tokens` whole tokens will be available."""
        self._refill()
        return max(0.0, (tokens - self._tokens) / self.rate)
