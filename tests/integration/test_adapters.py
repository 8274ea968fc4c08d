"""The framework adapters (LangChain, Haystack 2, LlamaIndex) on real clusters: the same ids, scores and explain
as ``HybridSearch`` for the same query, sync and async, with the rerank and fallback flags in metadata."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Sequence
from typing import Any

os.environ.setdefault("HAYSTACK_TELEMETRY_ENABLED", "False")  # no usage reports from the test machine

import pytest  # noqa: E402
from haystack import Pipeline  # noqa: E402
from llama_index.core.schema import QueryBundle

from connector.adapters.haystack_component import EshybridRetriever as HaystackRetriever
from connector.adapters.langchain_retriever import EshybridRetriever as LangChainRetriever
from connector.adapters.llamaindex_retriever import EshybridRetriever as LlamaIndexRetriever
from connector.cluster.client import Cluster
from connector.errors import ConfigError
from connector.search import AsyncHybridSearch, HybridSearch, SearchResponse
from tests.integration.test_hybrid_search import QUERY_VECTORS, TableEmbedder, corpus, create_index
from tests.integration.test_hybrid_search_async import AsyncTableEmbedder, ThreadedAsyncCluster

pytestmark = [pytest.mark.integration]

QUERY = "waterproof tent"
RED = [{"term": {"color": "red"}}]


class _ByLength:
    """A deterministic reranker: longer texts first."""

    def score(self, query: str, documents: Sequence[str]) -> list[float]:
        return [float(len(d)) for d in documents]


class _Broken:
    def score(self, query: str, documents: Sequence[str]) -> list[float]:
        raise RuntimeError("reranker down")


@pytest.fixture
def products(cluster: Cluster, index_name: str) -> str:
    create_index(cluster, index_name, corpus())
    return index_name


def _sync(cluster: Cluster, index: str, **options: Any) -> HybridSearch:
    return HybridSearch(cluster, index, embedder=TableEmbedder(QUERY_VECTORS), max_depth=24, **options)


def _async(cluster: Cluster, index: str) -> AsyncHybridSearch:
    return AsyncHybridSearch(
        ThreadedAsyncCluster(cluster), index, embedder=AsyncTableEmbedder(QUERY_VECTORS), max_depth=24
    )


def _expected(search: HybridSearch, **options: Any) -> SearchResponse:
    return search.search(QUERY, explain=True, **{"size": 5, **options})


def _langchain(search: Any, **kwargs: Any) -> list[tuple[str, float, dict[str, Any]]]:
    retriever = LangChainRetriever(search=search, k=5, text_fields=["title", "text"], **kwargs)
    docs = retriever.invoke(QUERY) if isinstance(search, HybridSearch) else asyncio.run(retriever.ainvoke(QUERY))
    assert all(doc.page_content for doc in docs)
    return [(str(doc.id), doc.metadata["score"], doc.metadata) for doc in docs]


def _haystack(search: Any, **kwargs: Any) -> list[tuple[str, float, dict[str, Any]]]:
    retriever = HaystackRetriever(search, top_k=5, text_fields=["title", "text"], **kwargs)
    if isinstance(search, HybridSearch):
        pipeline = Pipeline()
        pipeline.add_component("retriever", retriever)
        docs = pipeline.run({"retriever": {"query": QUERY}})["retriever"]["documents"]
    else:
        docs = asyncio.run(retriever.run_async(query=QUERY))["documents"]
    assert all(doc.content for doc in docs)
    return [(doc.id, float(doc.score), doc.meta) for doc in docs]


def _llamaindex(search: Any, **kwargs: Any) -> list[tuple[str, float, dict[str, Any]]]:
    retriever = LlamaIndexRetriever(search, top_k=5, text_fields=["title", "text"], **kwargs)
    if isinstance(search, HybridSearch):
        nodes = retriever.retrieve(QUERY)
    else:
        nodes = asyncio.run(retriever.aretrieve(QueryBundle(QUERY)))
    assert all(node.node.get_content() for node in nodes)
    return [(node.node.node_id, float(node.score or 0.0), node.node.metadata) for node in nodes]


ADAPTERS = {"langchain": _langchain, "haystack": _haystack, "llamaindex": _llamaindex}


def _check(got: list[tuple[str, float, dict[str, Any]]], expected: SearchResponse) -> None:
    assert [doc_id for doc_id, _, _ in got] == expected.ids
    assert [score for _, score, _ in got] == pytest.approx([hit.score for hit in expected.hits])
    for (_, _, meta), hit in zip(got, expected.hits, strict=True):
        assert meta["rank"] == hit.rank and meta["index"] == hit.index
        assert hit.explanation is not None and meta["explanation"] == hit.explanation.model_dump(mode="json")
        assert meta["reranked"] == expected.reranked and meta["rerank_fallback"] == expected.rerank_fallback
        assert meta["vector_fallback"] is False and meta["source"]["title"] == (hit.source or {})["title"]


@pytest.mark.parametrize("framework", sorted(ADAPTERS))
def test_adapters_return_what_hybrid_search_returns_sync_and_async(
    cluster: Cluster, products: str, framework: str
) -> None:
    adapter = ADAPTERS[framework]
    expected = _expected(_sync(cluster, products))
    _check(adapter(_sync(cluster, products)), expected)
    _check(adapter(_async(cluster, products)), expected)
    bm25 = _expected(_sync(cluster, products), mode="bm25", filters=RED)
    _check(adapter(_sync(cluster, products), search_kwargs={"mode": "bm25", "filters": RED}), bm25)


@pytest.mark.parametrize("framework", sorted(ADAPTERS))
def test_rerank_and_fallback_flags_reach_the_metadata(cluster: Cluster, products: str, framework: str) -> None:
    adapter = ADAPTERS[framework]
    kwargs = {"search_kwargs": {"mode": "hybrid+rerank"}}
    reranked = _expected(_sync(cluster, products, reranker=_ByLength()), mode="hybrid+rerank")
    got = adapter(_sync(cluster, products, reranker=_ByLength()), **kwargs)
    _check(got, reranked)
    assert reranked.reranked and all(meta["explanation"]["rerank_score"] is not None for _, _, meta in got)
    fallback = _expected(_sync(cluster, products, reranker=_Broken()), mode="hybrid+rerank")
    got = adapter(_sync(cluster, products, reranker=_Broken()), **kwargs)
    _check(got, fallback)
    assert fallback.rerank_fallback and all(meta["rerank_fallback_reason"] for _, _, meta in got)


def test_a_sync_call_on_an_async_search_says_what_to_do(cluster: Cluster, products: str) -> None:
    with pytest.raises(ConfigError, match="async"):
        LangChainRetriever(search=_async(cluster, products)).invoke(QUERY)
    with pytest.raises(ConfigError, match="size"):
        HaystackRetriever(_sync(cluster, products), search_kwargs={"size": 3})
