"""AsyncHybridSearch on the four real servers: the async driver of the one search core answers
exactly what the sync driver answers (ids, scores, explain, requests), with the same errors.

The async cluster here is a thin awaitable view of our own ``Cluster`` (each call in a worker
thread): the clusters are real; the official async clients are covered by the client tests.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import Any

import pytest

from connector.cluster.client import Cluster
from connector.errors import PaginationDepthError, SearchRequestError
from connector.search import AsyncHybridSearch, FusionConfig, HybridSearch, SearchResponse
from connector.search.console import render_response
from connector.search.rerank import RerankConfig
from tests.integration.test_hybrid_search import QUERY_VECTORS, TableEmbedder, corpus, create_index

pytestmark = [pytest.mark.integration]


class ThreadedAsyncCluster:
    """The async cluster interface over a sync :class:`Cluster` (for the driver test only)."""

    def __init__(self, cluster: Cluster) -> None:
        self.sync = cluster

    @property
    def capabilities(self) -> Any:
        return self.sync.capabilities

    async def request(
        self, method: str, path: str, *, body: Any = None, params: Mapping[str, Any] | None = None
    ) -> Any:
        return await asyncio.to_thread(self.sync.request, method, path, body=body, params=params)

    async def search(self, index: str, body: Mapping[str, Any], *, params: Mapping[str, Any] | None = None) -> Any:
        return await asyncio.to_thread(self.sync.search, index, body, params=params)

    async def msearch(self, index: str, searches: Sequence[tuple[Mapping[str, Any], Mapping[str, Any]]]) -> Any:
        return await asyncio.to_thread(self.sync.msearch, index, searches)

    async def get_mapping(self, index: str) -> Any:
        return await asyncio.to_thread(self.sync.get_mapping, index)


class AsyncTableEmbedder(TableEmbedder):
    async def embed_query(self, text: str) -> list[float]:  # type: ignore[override]
        await asyncio.sleep(0)
        return super().embed_query(text)


class ByLength:
    """A deterministic reranker: longer titles first."""

    def score(self, query: str, documents: Sequence[str]) -> list[float]:
        return [float(len(d)) for d in documents]


class AsyncByLength:
    async def score(self, query: str, documents: Sequence[str]) -> list[float]:
        await asyncio.sleep(0)
        return [float(len(d)) for d in documents]


class AsyncSlow:
    async def score(self, query: str, documents: Sequence[str]) -> list[float]:
        await asyncio.sleep(5)
        return [0.0] * len(documents)


@pytest.fixture
def products(cluster: Cluster, index_name: str) -> str:
    create_index(cluster, index_name, corpus())
    return index_name


def _same(a: SearchResponse, b: SearchResponse) -> None:
    assert a.ids == b.ids
    assert [h.score for h in a.hits] == [h.score for h in b.hits]
    assert [h.source for h in a.hits] == [h.source for h in b.hits]
    assert [h.explanation for h in a.hits] == [h.explanation for h in b.hits]
    assert (a.strategy, a.server_form, a.fusion, a.candidates) == (b.strategy, b.server_form, b.fusion, b.candidates)
    assert [(r.method, r.path, r.body, r.ndjson) for r in a.requests] == [
        (r.method, r.path, r.body, r.ndjson) for r in b.requests
    ]
    assert render_response(a).splitlines()[1:] == render_response(b).splitlines()[1:]


CASES: list[dict[str, Any]] = [
    {"mode": "bm25"},
    {"mode": "knn"},
    {"mode": "hybrid", "strategy": "client", "explain": True},
    {"mode": "hybrid", "strategy": "client", "fusion": FusionConfig(), "page": 2, "size": 3},
    {"mode": "hybrid", "strategy": "auto"},
    {"mode": "hybrid", "filters": [{"term": {"color": "blue"}}], "explain": True},
    {"mode": "knn", "source": ["title"]},
]


def test_async_driver_answers_what_the_sync_driver_answers(cluster: Cluster, products: str) -> None:
    sync = HybridSearch(cluster, products, embedder=TableEmbedder(QUERY_VECTORS), max_depth=24)
    asearch = AsyncHybridSearch(
        ThreadedAsyncCluster(cluster), products, embedder=AsyncTableEmbedder(QUERY_VECTORS), max_depth=24
    )

    async def run_all() -> list[SearchResponse]:
        return list(await asyncio.gather(*(asearch.search("waterproof tent", **case) for case in CASES)))

    answers = asyncio.run(run_all())
    for case, answer in zip(CASES, answers):
        _same(sync.search("waterproof tent", **case), answer)
    assert asearch.profile.vector_field == sync.profile.vector_field


def test_async_driver_reranks_and_falls_back(cluster: Cluster, products: str) -> None:
    def sync_search(reranker: Any) -> HybridSearch:
        return HybridSearch(cluster, products, embedder=TableEmbedder(QUERY_VECTORS), max_depth=24, reranker=reranker)

    def async_search(reranker: Any) -> AsyncHybridSearch:
        return AsyncHybridSearch(
            ThreadedAsyncCluster(cluster),
            products,
            embedder=TableEmbedder(QUERY_VECTORS),
            max_depth=24,
            reranker=reranker,
        )

    expected = sync_search(ByLength()).search("camping gear", mode="hybrid+rerank", explain=True)
    assert expected.reranked
    for reranker in (ByLength(), AsyncByLength()):
        got = asyncio.run(async_search(reranker).search("camping gear", mode="hybrid+rerank", explain=True))
        _same(expected, got)
        assert got.reranked and not got.rerank_fallback
    slow = AsyncHybridSearch(
        ThreadedAsyncCluster(cluster),
        products,
        embedder=TableEmbedder(QUERY_VECTORS),
        max_depth=24,
        rerank=RerankConfig(reranker=AsyncSlow(), top_k=10, timeout_s=0.2, cache_size=0),
    )
    fallback = asyncio.run(slow.search("camping gear", mode="hybrid+rerank"))
    assert fallback.rerank_fallback and not fallback.reranked
    assert "RerankTimeout" in (fallback.rerank_fallback_reason or "")
    plain = sync_search(ByLength()).search("camping gear", mode="hybrid", strategy="client")
    assert fallback.ids == plain.ids


def test_async_driver_raises_the_same_errors(cluster: Cluster, products: str) -> None:
    asearch = AsyncHybridSearch(
        ThreadedAsyncCluster(cluster), products, embedder=TableEmbedder(QUERY_VECTORS), max_depth=24
    )
    with pytest.raises(SearchRequestError) as bad_text:
        asyncio.run(asearch.search("  "))
    assert bad_text.value.field == "text"
    with pytest.raises(SearchRequestError) as bad_mode:
        asyncio.run(asearch.search("waterproof tent", mode="nope"))  # type: ignore[arg-type]
    assert bad_mode.value.field == "mode"
    with pytest.raises(PaginationDepthError):
        asyncio.run(asearch.search("waterproof tent", size=10, page=3))
    with pytest.raises(SearchRequestError) as bad_filter:
        asyncio.run(asearch.search("waterproof tent", filters=[{"script": {}}]))
    assert bad_filter.value.field


def test_async_profile_needs_loading_first(cluster: Cluster, products: str) -> None:
    asearch = AsyncHybridSearch(ThreadedAsyncCluster(cluster), products, embedder=TableEmbedder(QUERY_VECTORS))
    with pytest.raises(Exception, match="load_profile"):
        _ = asearch.profile
    profile = asyncio.run(asearch.load_profile())
    assert asearch.profile is profile and asearch.fusion is not None
