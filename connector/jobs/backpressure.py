"""A delay shared by the stages of a job that grows on 429/503 and shrinks on success."""

from __future__ import annotations

import logging
import threading

__all__ = ["Backpressure"]

logger = logging.getLogger(__name__)


class Backpressure:
    """A shared delay that grows on 429/503 and shrinks on success (AIMD-like)."""

    def __init__(self, *, max_delay_s: float = 5.0) -> None:
        self._lock = threading.Lock()
        self._delay_s = 0.0
        self.max_delay_s = max_delay_s
        self.events = 0

    @property
    def delay_s(self) -> float:
        return self._delay_s

    def penalize(self, reason: str) -> None:
        with self._lock:
            self._delay_s = min(self.max_delay_s, max(0.05, self._delay_s * 2))
            self.events += 1
        logger.info("backpressure (%s): slowing reads and embedding by %.2fs per request", reason, self._delay_s)

    def relieve(self) -> None:
        if self._delay_s:
            with self._lock:
                self._delay_s = 0.0 if self._delay_s < 0.02 else self._delay_s / 2

    def wait(self, stop: threading.Event) -> None:
        if self._delay_s:
            stop.wait(self._delay_s)
