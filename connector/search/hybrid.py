"""``HybridSearch`` and ``AsyncHybridSearch``: one call takes the user's text, filters and page and returns fused hits.

Two small facades over one sans-IO search flow: ``options``/``request`` -> ``pipeline`` (validate, ``planner``) ->
``core`` (the first round trip) -> ``client`` (legs, fusion, page) or ``server`` (one request) -> ``ops`` ->
``drivers`` (the sync one performs each operation in this thread, the async one awaits it). Same options, same
arguments (:class:`~connector.search.request.SearchRequest`), same answers; ``test_facades.py`` fails when their
public surfaces or their close/aclose differ.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping, Sequence
from typing import Any

from connector.errors import ConfigError
from connector.observe.search import observe_search
from connector.search._profile import IndexProfile
from connector.search.drivers import AsyncPerformer, SyncPerformer, adrive, drive
from connector.search.fusion import LegHit
from connector.search.models import (
    CorrectMode,
    ExecutedRequest,
    FusionConfig,
    SearchMode,
    SearchResponse,
    SearchTimings,
    Strategy,
)
from connector.search.ops import ClusterMsearch, ClusterRequest, ClusterSearch, Embed, GetMapping, Rewrite, Score, Trace
from connector.search.options import Reranker
from connector.search.personal import UserProfile
from connector.search.pipeline import _HybridCore
from connector.search.query_builder import os_missing_policy
from connector.search.query_vectors import Embedder
from connector.search.request import SearchRequest

__all__ = [
    "AsyncHybridSearch",
    "ClusterMsearch",
    "ClusterRequest",
    "ClusterSearch",
    "Embed",
    "Embedder",
    "GetMapping",
    "HybridSearch",
    "Reranker",
    "Rewrite",
    "Score",
    "SearchRequest",
    "os_missing_policy",
]


class HybridSearch(_HybridCore):
    """Hybrid (BM25 + kNN) search over one index or alias.

    Args (after ``cluster`` and ``index``: the fields of :class:`~connector.search.options.SearchOptions`, one by one or as ``options``):
        cluster: a :class:`connector.cluster.client.Cluster` (see :func:`connector.connect`); for
            :class:`AsyncHybridSearch`, a cluster with async ``request``/``search``/``msearch``/``get_mapping``.
        index: index or alias name.
        embedder: turns the query text into a vector (an ``EmbeddingClient``); needed for
            ``knn`` and ``hybrid`` modes.
        vector_field: the vector field (default: from ``_meta``, else ``embedding``).
        lexical_fields: field -> boost for the lexical leg (default: the index's recommendation
            in ``_meta`` (``eshybrid tune``), else the vector field's ``source_fields``, else every text field).
        lexical_form: ``combined_fields`` | ``best_fields`` | ``most_fields`` | ``cross_fields``
            (default: the index's recommendation, else ``combined_fields`` where the engine has it,
            see :mod:`connector.search.defaults`).
        tie_breaker: ``multi_match`` tie breaker.
        fusion: default :class:`FusionConfig` (default: the index's recommendation, else
            :data:`~connector.search.models.DEFAULT_FUSION`).
        strategy: ``auto`` | ``client`` | ``server`` (default for every search).
        max_depth: candidates each leg fetches; the deepest rank a page may reach.
        num_candidates: ES's HNSW candidate list (default ``max(2 * max_depth, 100)``); OpenSearch: ``k = max_depth``.
        source_excludes: ``_source`` fields never returned (default: the vector field).
        rerank: a :class:`connector.search.rerank.RerankConfig` (reranker, ``top_k``, document text,
            time budget) used by ``mode="hybrid+rerank"``.
        reranker: shortcut for ``rerank``: any ``score(query, documents)``, as ``RerankConfig(top_k=rerank_window)``.
        rerank_window: ``top_k`` for ``reranker`` (default ``min(50, max_depth)``); the reranked window is
            fixed whatever the page, so pages stay consistent.
        query_cache_size: query vectors kept in memory, for an embedder without a cache of its own (0: none);
            an ``EmbeddingClient`` caches with its own ``query_cache_size``, never twice.
        check_model: compare the embedder's model with the index ``_meta`` once (when both tell).
        profiles_index: where ``search(user="id")`` reads profiles (default ``eshybrid-profiles-<index>``).
        correct: spelling correction of every search that names none: ``off`` | ``auto`` (confident
            changes only) | ``force`` (default :data:`~connector.search.correction.DEFAULT_CORRECT`).
        correction: its thresholds and the optional fuzzy clause (:class:`CorrectionSettings`).
        rewriter, rewriter_timeout_s: an optional query rewriter (``rewrite(text) -> str``), run first, and its
            budget per call (over it, the original text is searched).
        embed_budget_s: the query (and text-to-image) embedding's budget per search, in seconds (``None``: no
            budget); over it, or when the embedder fails, the search answers without the vector signal,
            flagged ``vector_fallback``. The first embedding of the object gets at least 5 s (model check).
        breaker_failures, breaker_open_s: embedder failures in a row after which searches stop asking it (circuit
            breaker), and the seconds until a search asks it again (one probe).
        ubi: a :class:`connector.ubi.UbiLogger`: each search given a ``client_id`` queues its UBI query record
            (opt-in, like the search log; never blocks or fails the search).

    Raises:
        ConfigError: bad options.
    """

    def search(
        self,
        text: str,
        *,
        mode: SearchMode = "hybrid",
        filters: Sequence[Mapping[str, Any]] | None = None,
        size: int = 10,
        page: int = 1,
        explain: bool = False,
        fusion: FusionConfig | None = None,
        strategy: Strategy | None = None,
        source: bool | Sequence[str] = True,
        user: UserProfile | str | None = None,
        personal_weight: float | None = None,
        correct: CorrectMode | None = None,
        image: bytes | None = None,
        client_id: str | None = None,
        session_id: str | None = None,
    ) -> SearchResponse:
        """Run one search and return one page of hits.

        Args:
            text: the user's text (used in ``multi_match`` and embedded; never parsed as a query).
            mode: ``bm25`` | ``knn`` | ``hybrid`` | ``hybrid+rerank``.
            filters: query-DSL filter clauses, applied to both legs (inside kNN as a pre-filter).
            size: hits per page (1..max_depth).
            page: 1-based page number.
            explain: attach each hit's per-leg raw score, rank, normalized value, weight and fused score.
            fusion: override the instance's :class:`FusionConfig` for this call.
            strategy: override ``auto`` | ``client`` | ``server`` for this call.
            source: ``True`` (all but the vector), ``False`` (ids only) or fields to include.
            user: the shopper: a :class:`~connector.search.personal.UserProfile`, or a user id read from
                ``profiles_index`` (unknown id: no personalization). Adds the ``personal`` signal: the shopper's
                affinities (brand, category... values) scored over the legs' candidates (it reorders, never
                adds); fused client-side. With a ``session_id``, that session's recent UBI events count more.
            personal_weight: the personal signal's weight beside the legs' (default
                :data:`~connector.search.personal.DEFAULT_PERSONAL_WEIGHT`); 0 below
                :data:`~connector.search.personal.MIN_EVENTS` events.
            correct: override the instance's spelling correction (``off`` | ``auto`` | ``force``).
            image: an example image (the bytes of its file): the image signal searches with its vector instead
                of the text's (needs ``image=ImageSignal(...)``); ``text`` may then be empty.
            client_id, session_id: the shopper's browser and visit (UBI): with a ``ubi`` logger, the search's
                query record (``query_id``, the ids shown) is queued for ``ubi_queries``; searches without a
                ``client_id`` (evaluation, tuning) are not recorded.

        Returns:
            A :class:`SearchResponse` (:func:`connector.search.console.render_response` renders what ran), with
            its ``query_id``, ``round_trips`` and ``vector_fallback`` (a helper failed: lexical answer).

        Raises:
            SearchRequestError: invalid text, mode, filters, size or page (``field`` says which).
            PaginationDepthError: ``page * size`` exceeds ``max_depth``.
            ModelMismatchError: the embedder's model is not the index's.
            ClusterError: the cluster failed.
        """
        request = SearchRequest(**{k: v for k, v in locals().items() if k not in ("self", "__class__")})
        trace = Trace()
        with observe_search(mode=mode, index=self.index) as seen:  # span + metrics (no-ops without the extras)
            response = drive(self._search_flow(request), self._performer, trace)
            response.requests, response.round_trips = trace.requests, trace.round_trips
            response.shards_failed = trace.shards_failed
            self._record_query(request, response)
            seen.done(response)
        return response

    def retrieve_legs(
        self,
        text: str,
        *,
        mode: SearchMode = "hybrid",
        filters: Sequence[Mapping[str, Any]] | None = None,
        requests: list[ExecutedRequest] | None = None,
        timings: SearchTimings | None = None,
        correct: CorrectMode | None = None,
    ) -> dict[str, list[LegHit]]:
        """Run the legs of ``mode`` once (one round trip) and return their candidates.

        Used by :meth:`search` and by fusion tuning (fuse the same legs many ways).
        """
        trace = Trace(requests=requests if requests is not None else [])
        flow = self._retrieve_legs_flow(text, mode=mode, filters=filters, timings=timings, correct=correct)
        return drive(flow, self._performer, trace)

    def load_profile(self) -> IndexProfile:
        """Read the index mapping once (``search`` does it on its own)."""
        return self.profile

    def close(self) -> None:
        """Close the rewriter and the embedders when they can be closed (the cluster belongs to the caller)."""
        for closeable in self._closeables():
            close = getattr(closeable, "close", None)
            if callable(close):
                close()
        self._performer.close()

    def __enter__(self) -> HybridSearch:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def _performer(self) -> SyncPerformer:
        if "_sync_performer" not in self.__dict__:
            self._sync_performer = SyncPerformer(self.cluster, self._query_vectors, self.image, self._guards)
        return self._sync_performer

    def _read_profile(self) -> IndexProfile:
        return drive(self._profile_flow(), self._performer, Trace())


class AsyncHybridSearch(_HybridCore):
    """:class:`HybridSearch` for async application code: the same options, search logic, results,
    explain output and errors; every round trip is awaited.

    ``cluster`` is an async cluster (``await connector.aconnect(...)``, e.g. over the application's own
    ``AsyncElasticsearch`` or ``AsyncOpenSearch``). The embedder's ``embed_query`` and a reranker's
    ``score`` are awaited when they are coroutine functions, and run in a worker thread otherwise.

    ::

        search = AsyncHybridSearch(cluster, "products", embedder=AsyncEmbeddingClient(url))
        response = await search.search("red running shoes", size=10)
    """

    async def search(
        self,
        text: str,
        *,
        mode: SearchMode = "hybrid",
        filters: Sequence[Mapping[str, Any]] | None = None,
        size: int = 10,
        page: int = 1,
        explain: bool = False,
        fusion: FusionConfig | None = None,
        strategy: Strategy | None = None,
        source: bool | Sequence[str] = True,
        user: UserProfile | str | None = None,
        personal_weight: float | None = None,
        correct: CorrectMode | None = None,
        image: bytes | None = None,
        client_id: str | None = None,
        session_id: str | None = None,
    ) -> SearchResponse:
        """:meth:`HybridSearch.search`, awaited: the same arguments, result and errors."""
        request = SearchRequest(**{k: v for k, v in locals().items() if k not in ("self", "__class__")})
        trace = Trace()
        with observe_search(mode=mode, index=self.index) as seen:
            response = await adrive(self._search_flow(request), self._performer, trace)
            response.requests, response.round_trips = trace.requests, trace.round_trips
            response.shards_failed = trace.shards_failed
            self._record_query(request, response)
            seen.done(response)
        return response

    async def retrieve_legs(
        self,
        text: str,
        *,
        mode: SearchMode = "hybrid",
        filters: Sequence[Mapping[str, Any]] | None = None,
        requests: list[ExecutedRequest] | None = None,
        timings: SearchTimings | None = None,
        correct: CorrectMode | None = None,
    ) -> dict[str, list[LegHit]]:
        """:meth:`HybridSearch.retrieve_legs`, awaited."""
        trace = Trace(requests=requests if requests is not None else [])
        flow = self._retrieve_legs_flow(text, mode=mode, filters=filters, timings=timings, correct=correct)
        return await adrive(flow, self._performer, trace)

    async def load_profile(self) -> IndexProfile:
        """Read the index mapping once (``search`` does it; call it before reading ``profile`` or ``fusion``)."""
        return await adrive(self._profile_flow(), self._performer, Trace())

    async def aclose(self) -> None:
        """:meth:`HybridSearch.close`, awaited: an ``aclose`` (else ``close``) of each, awaited when async."""
        for closeable in self._closeables():
            close = getattr(closeable, "aclose", None) or getattr(closeable, "close", None)
            if callable(close):
                result = close()
                if inspect.isawaitable(result):
                    await result

    async def __aenter__(self) -> AsyncHybridSearch:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    @property
    def _performer(self) -> AsyncPerformer:
        if "_async_performer" not in self.__dict__:
            self._async_performer = AsyncPerformer(self.cluster, self._query_vectors, self.image, self._guards)
        return self._async_performer

    def _read_profile(self) -> IndexProfile:
        raise ConfigError(
            f"the mapping of {self.index!r} is not read yet: await search.load_profile() first "
            "(search() reads it on its own)",
            field="index",
        )
