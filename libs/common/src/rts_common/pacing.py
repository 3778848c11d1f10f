"""A token bucket: at most `rate` things per second on average, bursts up to `capacity`.

event-sim paces its run with it (it sleeps until a batch of tokens has accumulated and
sends that many events at once, so the average rate is exact and the cost of sleeping
does not grow with the rate); the gateway samples which playback events it emits one by
one. Tokens beyond `capacity` (a process that fell that far behind) are dropped and
counted, so a stall is not followed by a burst.
"""

from __future__ import annotations

import time
from collections.abc import Callable


class TokenBucket:
    def __init__(
        self,
        rate: float,
        capacity: float,
        clock: Callable[[], float] = time.monotonic,
        *,
        initial: float = 1.0,
    ) -> None:
        """`initial` tokens are there at once (by default one: the first take succeeds)."""
        if rate <= 0 or capacity < 1:
            raise ValueError("rate must be positive and capacity at least one token")
        self.rate = rate
        self.capacity = capacity
        self._clock = clock
        self._last = clock()
        self._tokens = min(float(initial), capacity)
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
