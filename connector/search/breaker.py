"""A circuit breaker for a helper of the search path (the query embedder, the image embedder).

While the helper answers, every call goes through (``closed``). After ``failures_to_open`` failures in a
row the breaker opens: calls are refused at once, so a search stops paying the helper's budget while it is
down. After ``open_s`` one call is let through as a probe (``half-open``): success closes the breaker, a
failure opens it for another ``open_s``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Literal

from connector.errors import ConfigError

__all__ = ["CircuitBreaker"]

BreakerState = Literal["closed", "open", "half-open"]


class CircuitBreaker:
    """Thread-safe; the clock is injectable for tests.

    Args:
        failures_to_open: failures in a row that open the breaker (>= 1).
        open_s: seconds the breaker stays open before one probe call is let through.
        clock: monotonic seconds (default ``time.monotonic``).
    """

    def __init__(
        self, *, failures_to_open: int = 3, open_s: float = 5.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if failures_to_open < 1 or open_s <= 0:
            raise ConfigError(
                f"failures_to_open must be >= 1 and open_s > 0, got {failures_to_open} and {open_s}",
                field="failures_to_open",
            )
        self.failures_to_open = failures_to_open
        self.open_s = open_s
        self._clock = clock
        self._failures = 0
        self._opened_at: float | None = None
        self._probing = False
        self._lock = threading.Lock()

    @property
    def state(self) -> BreakerState:
        with self._lock:
            return self._state()

    def _state(self) -> BreakerState:
        if self._opened_at is None:
            return "closed"
        if self._probing or self._clock() - self._opened_at < self.open_s:
            return "open"
        return "half-open"

    def allow(self) -> bool:
        """Whether a call may go to the helper now (in ``half-open``, only the first caller: the probe)."""
        with self._lock:
            state = self._state()
            if state == "half-open":
                self._probing = True
                return True
            return state == "closed"

    def success(self) -> None:
        with self._lock:
            self._failures, self._opened_at, self._probing = 0, None, False

    def failure(self) -> None:
        with self._lock:
            self._failures += 1
            if self._probing or self._failures >= self.failures_to_open:
                self._opened_at, self._probing = self._clock(), False
