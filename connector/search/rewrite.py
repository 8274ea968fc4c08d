"""The query-rewriter hook: any object with ``rewrite(text) -> text``, run within a time budget.

A rewriter runs before the spelling correction (the correction then checks the rewritten words
against the index). Like the reranker, it is optional and never breaks a search: when it raises,
answers something unusable (not a string, empty, too long) or runs over ``timeout_s``, the search
uses the original text and the response says so (``correction.rewrite_fallback`` and its reason).
A call over budget is abandoned on its worker thread (Python cannot interrupt it); the next call
waits for that thread to come free, so a stuck rewriter costs every call its budget, never more.
"""

from __future__ import annotations

import concurrent.futures
import logging
import threading
import time
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from connector.errors import ConfigError

__all__ = ["QueryRewriter", "RewriteOutcome", "TimedRewriter", "MAX_REWRITE_CHARS"]

logger = logging.getLogger(__name__)

MAX_REWRITE_CHARS = 4096


@runtime_checkable
class QueryRewriter(Protocol):
    """Anything that rewrites a shopper's text into a better query."""

    def rewrite(self, text: str) -> str: ...


@dataclass(frozen=True)
class RewriteOutcome:
    """The text to search and how it came about."""

    text: str
    rewritten: bool = False
    fallback: bool = False
    reason: str | None = None
    took_ms: float = 0.0


class TimedRewriter:
    """Runs ``rewriter.rewrite`` on a worker thread with a time budget; falls back to the original text.

    Args:
        rewriter: anything with ``rewrite(text) -> str``.
        timeout_s: the budget of one call (``None``: no budget).

    Raises:
        ConfigError: ``rewriter`` has no ``rewrite`` method or ``timeout_s`` is not positive.
    """

    def __init__(self, rewriter: QueryRewriter, *, timeout_s: float | None = 0.5) -> None:
        if not callable(getattr(rewriter, "rewrite", None)):
            raise ConfigError("a query rewriter needs a rewrite(text) -> str method", field="rewriter")
        if timeout_s is not None and timeout_s <= 0:
            raise ConfigError(f"rewriter timeout_s must be > 0, got {timeout_s}", field="rewriter_timeout_s")
        self.rewriter = rewriter
        self.timeout_s = timeout_s
        self._executor: concurrent.futures.ThreadPoolExecutor | None = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"TimedRewriter({type(self.rewriter).__name__}, timeout_s={self.timeout_s})"

    def _pool(self) -> concurrent.futures.ThreadPoolExecutor:
        with self._lock:
            if self._executor is None:
                self._executor = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="eshybrid-rewrite")
            return self._executor

    def apply(self, text: str) -> RewriteOutcome:
        """The rewritten text, or the original with ``fallback=True`` and the reason."""
        started = time.perf_counter()
        try:
            if self.timeout_s is None:
                answer = self.rewriter.rewrite(text)
            else:
                answer = self._pool().submit(self.rewriter.rewrite, text).result(timeout=self.timeout_s)
            if not isinstance(answer, str) or not answer.strip():
                raise ValueError(f"the rewriter answered {type(answer).__name__} {str(answer)[:40]!r}, not a text")
            if len(answer) > MAX_REWRITE_CHARS:
                raise ValueError(f"the rewriter answered {len(answer)} characters (at most {MAX_REWRITE_CHARS})")
        except concurrent.futures.TimeoutError:
            return self._fallback(text, started, f"over its {self.timeout_s:g}s budget")
        except Exception as e:  # noqa: BLE001 - any rewriter failure degrades to the original text
            return self._fallback(text, started, f"{type(e).__name__}: {e}")
        answer = " ".join(answer.split())
        took = round((time.perf_counter() - started) * 1000.0, 3)
        return RewriteOutcome(text=answer, rewritten=answer != text, took_ms=took)

    def _fallback(self, text: str, started: float, reason: str) -> RewriteOutcome:
        took = round((time.perf_counter() - started) * 1000.0, 3)
        logger.warning("query rewriter %r failed after %.1f ms, searching the original text: %s", self, took, reason)
        return RewriteOutcome(text=text, fallback=True, reason=reason, took_ms=took)

    def close(self) -> None:
        with self._lock:
            if self._executor is not None:
                self._executor.shutdown(wait=False, cancel_futures=True)
                self._executor = None
