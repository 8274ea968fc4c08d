"""Reranking inside HybridSearch against a real cluster and the real rerank service (tiny
cross-encoder built from a config): the reranked top k equals sorting by the service's scores,
the rest keeps the fused order, and an unreachable or too-slow service falls back with the flag."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from connector import connect
from connector.cluster.client import Cluster
from connector.search.rerank import RerankConfig
from connector.services.rerank import RerankClient
from tests.integration.test_hybrid_search import QUERY_VECTORS, TableEmbedder, corpus, create_index

pytestmark = [pytest.mark.integration, pytest.mark.ray, pytest.mark.es9]


@pytest.fixture
def products(es9_url: str, index_name: str) -> Iterator[tuple[Cluster, str]]:
    with connect(es9_url) as cluster:
        create_index(cluster, index_name, corpus())
        yield cluster, index_name


def _search(cluster: Cluster, index: str, config: RerankConfig | None) -> object:
    from connector.search import HybridSearch

    return HybridSearch(cluster, index, embedder=TableEmbedder(QUERY_VECTORS), max_depth=20, rerank=config)


def test_service_reranks_the_fused_top_k(products: tuple[Cluster, str], rerank_url: str) -> None:
    cluster, index = products
    fused = _search(cluster, index, None).search("camping gear", size=10)  # type: ignore[attr-defined]
    config = RerankConfig(url=rerank_url, top_k=5, fields=("title",), timeout_s=30.0, cache_size=0)
    reranked = _search(cluster, index, config).search(  # type: ignore[attr-defined]
        "camping gear", mode="hybrid+rerank", size=10, explain=True
    )
    assert reranked.reranked and not reranked.rerank_fallback
    window = fused.ids[:5]
    titles = {h.id: h.source["title"] for h in fused.hits}
    with RerankClient(rerank_url, timeout_s=30.0) as client:
        scores = client.score("camping gear", [titles[i] for i in window])
    expected = [doc for _, doc in sorted(zip(scores, window), key=lambda p: (-p[0], window.index(p[1])))]
    assert reranked.ids[:5] == expected
    assert reranked.ids[5:] == fused.ids[5:]
    by_id = {h.id: h for h in reranked.hits}
    for doc, score in zip(window, scores):
        assert by_id[doc].explanation.rerank_score == pytest.approx(score, abs=1e-4)


def test_unreachable_or_slow_service_falls_back_to_fused_order(products: tuple[Cluster, str], rerank_url: str) -> None:
    cluster, index = products
    fused = _search(cluster, index, None).search("camping gear", size=10)  # type: ignore[attr-defined]
    down = RerankConfig(url="http://127.0.0.1:9", top_k=5, fields=("title",), timeout_s=2.0)
    slow = RerankConfig(url=rerank_url, top_k=5, fields=("title",), timeout_s=0.001, cache_size=0)
    for config in (down, slow):
        response = _search(cluster, index, config).search(  # type: ignore[attr-defined]
            "camping gear", mode="hybrid+rerank", size=10
        )
        assert response.rerank_fallback and not response.reranked
        assert response.ids == fused.ids
        assert response.rerank_fallback_reason
