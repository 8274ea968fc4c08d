"""The embedder's circuit breaker: open after failures in a row, one probe after open_s, closed by a success."""

from __future__ import annotations

import pytest

from connector.errors import ConfigError
from connector.search.breaker import CircuitBreaker


class _Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_opens_after_failures_in_a_row_and_probes_once_after_open_s() -> None:
    clock = _Clock()
    breaker = CircuitBreaker(failures_to_open=2, open_s=5.0, clock=clock)
    assert breaker.allow() and breaker.state == "closed"
    breaker.failure()
    breaker.success()  # a success resets the count
    breaker.failure()
    assert breaker.allow()
    breaker.failure()
    assert breaker.state == "open" and not breaker.allow()
    clock.now += 5.0
    assert breaker.state == "half-open"
    assert breaker.allow() and not breaker.allow(), "one probe at a time"
    breaker.failure()  # the probe failed: open for another open_s
    assert not breaker.allow()
    clock.now += 5.0
    assert breaker.allow()
    breaker.success()
    assert breaker.state == "closed" and breaker.allow() and breaker.allow()


def test_bad_settings_say_what_to_set() -> None:
    with pytest.raises(ConfigError, match="failures_to_open"):
        CircuitBreaker(failures_to_open=0)
