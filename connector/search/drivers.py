"""The two drivers of the sans-IO search core: ONE loop each, performing every operation it yields.

Each loop records the cluster requests it sends and counts the sequential round trips (:class:`~connector.search.
ops.Trace`). The query embedder and the image embedder run within the search's embedding budget behind a
:class:`~connector.search.breaker.CircuitBreaker`: over the budget, failed, or refused by an open breaker, the
operation raises :class:`~connector.errors.EmbeddingServiceUnavailable` and the core falls back to the lexical
result (flagged ``vector_fallback``). No retry is made past the budget.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import inspect
import logging
from collections.abc import Awaitable, Callable
from contextlib import AbstractContextManager, nullcontext
from functools import partial
from typing import Any

from connector.errors import EmbeddingServiceUnavailable, EshybridError, ModelMismatchError, RerankError, RerankTimeout
from connector.observe.tracing import cluster_stage, in_current_context, stage_span
from connector.search.breaker import CircuitBreaker
from connector.search.images import ImageSignal
from connector.search.ops import (
    CLUSTER_OPS,
    ClusterMsearch,
    ClusterRequest,
    ClusterSearch,
    Embed,
    EmbedImage,
    Flow,
    GetMapping,
    Op,
    Rewrite,
    Score,
    T,
    Together,
    Trace,
)
from connector.search.query_vectors import QueryVectors
from connector.search.rerank import score_texts

__all__ = ["AsyncPerformer", "EmbedGuard", "SyncPerformer", "adrive", "drive"]

logger = logging.getLogger(__name__)

# The first embedding of a search object also checks the model and opens the connection: it gets this
# budget instead of the (short) per-search one, so a cold start is not taken for a down embedder.
FIRST_EMBED_BUDGET_S = 5.0


class EmbedGuard:
    """The embedding budget and breaker of one helper (the query embedder or the image embedder)."""

    def __init__(self, name: str, *, budget_s: float | None, breaker: CircuitBreaker) -> None:
        self.name = name
        self.budget_s = budget_s
        self.breaker = breaker
        self._warm = False

    def budget(self) -> float | None:
        if self.budget_s is None:
            return None
        return self.budget_s if self._warm else max(self.budget_s, FIRST_EMBED_BUDGET_S)

    def refused(self) -> EmbeddingServiceUnavailable | None:
        if self.breaker.allow():
            return None
        return EmbeddingServiceUnavailable(
            f"the {self.name} is skipped: it failed {self.breaker.failures_to_open} times in a row "
            f"(probed again {self.breaker.open_s:g}s after the last failure)",
            retryable=True,
            breaker_open=True,
        )

    def over_budget(self, budget_s: float) -> EmbeddingServiceUnavailable:
        return EmbeddingServiceUnavailable(f"the {self.name} took over its {budget_s:g}s budget", timeout_s=budget_s)

    def outcome(self, error: BaseException | None) -> None:
        """Record a call's outcome (a model mismatch is a misconfiguration, not the helper failing)."""
        if error is None:
            self._warm = True
            self.breaker.success()
        elif not isinstance(error, ModelMismatchError):
            self.breaker.failure()
            if self.breaker.state == "open":
                logger.warning(
                    "the %s failed (%s): searches skip it for %gs, then probe it", self.name, error, self.breaker.open_s
                )


def drive(flow: Flow[T], perform: Callable[[Op], Any], trace: Trace) -> T:
    """Run a flow to its end, performing each operation it yields (errors are thrown back in)."""
    result: Any = None
    error: Exception | None = None
    while True:
        try:
            op = flow.throw(error) if error is not None else flow.send(result)
        except StopIteration as stop:
            return stop.value  # type: ignore[no-any-return]
        trace.before(op)
        result, error = None, None
        try:
            with _stage_span(op):
                result = perform(op)
            trace.after(op, result)
        except Exception as e:  # noqa: BLE001 - the flow sees it where it asked, and re-raises or handles it
            error = e


async def adrive(flow: Flow[T], perform: Callable[[Op], Awaitable[Any]], trace: Trace) -> T:
    """:func:`drive`, awaiting each operation."""
    result: Any = None
    error: Exception | None = None
    while True:
        try:
            op = flow.throw(error) if error is not None else flow.send(result)
        except StopIteration as stop:
            return stop.value  # type: ignore[no-any-return]
        trace.before(op)
        result, error = None, None
        try:
            with _stage_span(op):
                result = await perform(op)
            trace.after(op, result)
        except Exception as e:  # noqa: BLE001 - see drive
            error = e


def _stage_span(op: Op) -> AbstractContextManager[Any]:
    """The trace span of the stage ``op`` performs.

    A stage that is one cluster request is that request's span (marked with the stage); a :class:`Together` has
    none (its operations run side by side: their spans sit under the search's); an embedding opens its span where
    it runs (the performers' ``_embed``), in a worker thread or not.
    """
    if isinstance(op, Score):
        return stage_span("rerank")
    if isinstance(op, Rewrite):
        return stage_span("correct")
    if isinstance(op, GetMapping):
        return cluster_stage("profile")
    if isinstance(op, ClusterRequest) and op.path.rstrip("/").endswith("_mget"):
        return cluster_stage("fetch")
    if isinstance(op, CLUSTER_OPS):
        return cluster_stage("legs")
    return nullcontext()


class SyncPerformer:
    """Performs operations for :class:`~connector.search.hybrid.HybridSearch` (embeddings in worker threads)."""

    def __init__(
        self,
        cluster: Any,
        vectors: QueryVectors | None,
        image: ImageSignal | None,
        guards: dict[str, EmbedGuard],
    ) -> None:
        self.cluster, self.vectors, self.image, self.guards = cluster, vectors, image, guards
        self._pool: concurrent.futures.ThreadPoolExecutor | None = None

    @property
    def pool(self) -> concurrent.futures.ThreadPoolExecutor:
        if self._pool is None:
            self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=8, thread_name_prefix="eshybrid-search")
        return self._pool

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None

    def __call__(self, op: Op) -> Any:
        if isinstance(op, Together):
            # The others start in worker threads first; the first cluster request is then sent from this one.
            inline = next((o for o in op.ops if isinstance(o, CLUSTER_OPS)), None)
            waits = [self._start(o) if o is not inline else partial(self._cluster, o) for o in op.ops]
            return tuple(_outcome(wait) for wait in waits)
        if isinstance(op, CLUSTER_OPS):
            return self._cluster(op)
        return self._start(op)()

    def _start(self, op: Op) -> Callable[[], Any]:
        """Start ``op`` (an embedding in a worker thread, at once) and return how to wait for its result."""
        if isinstance(op, Embed) and not op.guarded:
            return partial(self._embed, op)
        if isinstance(op, Embed | EmbedImage):
            guard = self.guards["image" if isinstance(op, EmbedImage) else "query"]
            refused = guard.refused()
            if refused is not None:
                return _raiser(refused)
            budget = guard.budget() if isinstance(op, Embed) or op.image is None else None
            future = self.pool.submit(in_current_context(self._embed), op)  # its spans nest under the search
            return lambda: _within(future, guard, budget)
        if isinstance(op, ClusterSearch | ClusterMsearch | ClusterRequest):
            future = self.pool.submit(in_current_context(self._cluster), op)
            return future.result
        return lambda: self._other(op)

    def _embed(self, op: Embed | EmbedImage) -> list[float]:
        with stage_span("embed"):
            return self._embed_now(op)

    def _embed_now(self, op: Embed | EmbedImage) -> list[float]:
        if isinstance(op, EmbedImage):
            assert self.image is not None
            return self.image.vector(op)
        assert self.vectors is not None
        return self.vectors.vector(op.text, vector_meta=op.vector_meta)

    def _cluster(self, op: ClusterSearch | ClusterMsearch | ClusterRequest) -> Any:
        if isinstance(op, ClusterSearch):
            return self.cluster.search(op.index, op.body, params=op.params)
        if isinstance(op, ClusterMsearch):
            return self.cluster.msearch(op.index, op.searches)
        return self.cluster.request(op.method, op.path, body=op.body, params=op.params).body

    def _other(self, op: Op) -> Any:
        if isinstance(op, Score):
            return score_texts(op.config, op.query, op.texts)
        if isinstance(op, Rewrite):
            return op.rewriter.apply(op.text)
        if isinstance(op, GetMapping):
            return self.cluster.get_mapping(op.index)
        raise TypeError(f"unknown search operation {op!r}")


def _within(future: concurrent.futures.Future[Any], guard: EmbedGuard, budget_s: float | None) -> Any:
    try:
        result = future.result(timeout=budget_s)
    except concurrent.futures.TimeoutError:
        error = guard.over_budget(budget_s or 0.0)
        guard.outcome(error)
        raise error from None
    except Exception as e:
        guard.outcome(e)
        raise _as_embedding_error(e, guard) from e
    guard.outcome(None)
    return result


def _as_embedding_error(error: Exception, guard: EmbedGuard) -> Exception:
    """Any failure of an embedder (an in-process model's too) as an ``EmbeddingError`` the core falls back on."""
    if isinstance(error, EshybridError):
        return error
    return EmbeddingServiceUnavailable(f"the {guard.name} failed: {type(error).__name__}: {error}")


def _outcome(wait: Callable[[], Any]) -> Any:
    try:
        return wait()
    except Exception as e:  # noqa: BLE001 - a Together answers each operation's error in its place
        return e


def _raiser(error: Exception) -> Callable[[], Any]:
    def wait() -> Any:
        raise error

    return wait


class AsyncPerformer:
    """Performs operations for :class:`~connector.search.hybrid.AsyncHybridSearch`."""

    def __init__(
        self,
        cluster: Any,
        vectors: QueryVectors | None,
        image: ImageSignal | None,
        guards: dict[str, EmbedGuard],
    ) -> None:
        self.cluster, self.vectors, self.image, self.guards = cluster, vectors, image, guards

    async def __call__(self, op: Op) -> Any:
        if isinstance(op, Together):
            return tuple(await asyncio.gather(*(self(o) for o in op.ops), return_exceptions=True))
        if isinstance(op, ClusterSearch):
            return await self.cluster.search(op.index, op.body, params=op.params)
        if isinstance(op, ClusterMsearch):
            return await self.cluster.msearch(op.index, op.searches)
        if isinstance(op, ClusterRequest):
            return (await self.cluster.request(op.method, op.path, body=op.body, params=op.params)).body
        if isinstance(op, Embed | EmbedImage):
            return await self._embed(op)
        if isinstance(op, Score):
            return await _ascore(op)
        if isinstance(op, Rewrite):
            return await asyncio.to_thread(op.rewriter.apply, op.text)
        if isinstance(op, GetMapping):
            return await self.cluster.get_mapping(op.index)
        raise TypeError(f"unknown search operation {op!r}")

    async def _embed(self, op: Embed | EmbedImage) -> list[float]:
        with stage_span("embed"):
            return await self._embed_now(op)

    async def _embed_now(self, op: Embed | EmbedImage) -> list[float]:
        if isinstance(op, Embed) and not op.guarded:
            assert self.vectors is not None
            return await self.vectors.avector(op.text, vector_meta=op.vector_meta)
        guard = self.guards["image" if isinstance(op, EmbedImage) else "query"]
        refused = guard.refused()
        if refused is not None:
            raise refused
        budget = guard.budget() if isinstance(op, Embed) or op.image is None else None
        if isinstance(op, EmbedImage):
            assert self.image is not None
            call: Awaitable[list[float]] = asyncio.to_thread(self.image.vector, op)
        else:
            assert self.vectors is not None
            call = self.vectors.avector(op.text, vector_meta=op.vector_meta)
        try:
            result = await asyncio.wait_for(call, timeout=budget)
        except TimeoutError:
            error = guard.over_budget(budget or 0.0)
            guard.outcome(error)
            raise error from None
        except Exception as e:
            guard.outcome(e)
            raise _as_embedding_error(e, guard) from e
        guard.outcome(None)
        return result


async def _ascore(op: Score) -> list[float]:
    """Rerank scores for the async driver: an async ``score`` awaited within the budget; a sync one in a thread."""
    reranker = op.config.reranker
    score = getattr(reranker, "score", None)
    if reranker is None or not inspect.iscoroutinefunction(score):
        return await asyncio.to_thread(score_texts, op.config, op.query, op.texts)
    budget = op.config.timeout_s
    try:
        if "timeout_s" in inspect.signature(score).parameters:
            coro = score(op.query, op.texts, timeout_s=budget)
        else:
            coro = score(op.query, op.texts)
        return [float(s) for s in await asyncio.wait_for(coro, timeout=budget)]
    except TimeoutError as e:
        raise RerankTimeout(f"the reranker took over its {budget:g}s budget", timeout_s=budget) from e
    except RerankError:
        raise
    except Exception as e:  # noqa: BLE001 - a reranker failure is a fallback, never an error page
        raise RerankError(f"the reranker failed: {type(e).__name__}: {e}") from e
