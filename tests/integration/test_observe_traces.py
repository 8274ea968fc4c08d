"""Traces on real servers: a search's cluster requests are spans of its trace, and the W3C ``traceparent`` the
cluster and the embedding service receive names those spans (read at a loopback proxy in front of each)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Sequence
from typing import Any
from urllib.parse import urlsplit

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from connector.cluster.detect import connect
from connector.observe import tracing
from connector.search import AsyncHybridSearch, HybridSearch
from connector.services.embedding import EmbeddingClient
from tests.fixtures.faultproxy import fault_proxy
from tests.integration.test_hybrid_search import QUERY_VECTORS, TableEmbedder, corpus, create_index
from tests.integration.test_hybrid_search_async import AsyncTableEmbedder, ThreadedAsyncCluster

pytestmark = [pytest.mark.integration]


@pytest.fixture
def exporter() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing.set_tracer_provider(provider)
    yield exporter
    tracing.set_tracer_provider(None)


class _ByLength:
    def score(self, query: str, documents: Sequence[str]) -> list[float]:
        return [float(len(d)) for d in documents]


def _ids(traceparent: str) -> tuple[int, int]:
    _, trace_id, span_id, _ = traceparent.split("-")
    return int(trace_id, 16), int(span_id, 16)


@pytest.mark.parametrize("asynchronous", [False, True], ids=["sync", "async"])
def test_a_search_is_one_trace_of_its_stages_and_cluster_requests(
    cluster_url: str, index_name: str, exporter: InMemorySpanExporter, asynchronous: bool
) -> None:
    with connect(cluster_url) as direct:
        create_index(direct, index_name, corpus())
    with fault_proxy(cluster_url, share=0.0) as proxy, connect(proxy.url) as cluster:
        options: dict[str, Any] = {"max_depth": 24, "reranker": _ByLength()}
        search = HybridSearch(cluster, index_name, embedder=TableEmbedder(QUERY_VECTORS), **options)
        search.load_profile()
        exporter.clear()
        proxy.traceparents.clear()
        if asynchronous:
            asearch = AsyncHybridSearch(
                ThreadedAsyncCluster(cluster), index_name, embedder=AsyncTableEmbedder(QUERY_VECTORS), **options
            )
            response = asyncio.run(asearch.search("waterproof tent", mode="hybrid+rerank", strategy="client"))
        else:
            response = search.search("waterproof tent", mode="hybrid+rerank", strategy="client")
        assert response.hits
    spans = exporter.get_finished_spans()
    by_id = {s.context.span_id: s for s in spans}
    (root,) = [s for s in spans if s.name == tracing.SPAN_SEARCH]
    assert root.parent is None and root.attributes["eshybrid.mode"] == "hybrid+rerank"
    assert root.attributes["eshybrid.hits"] == len(response.hits) and "eshybrid.stage.fuse_ms" in root.attributes
    assert {s.context.trace_id for s in spans} == {root.context.trace_id}  # one trace

    def ancestors(span: Any) -> list[str]:
        names = []
        while span.parent is not None:
            span = by_id[span.parent.span_id]
            names.append(span.name)
        return names

    # a stage of its own (embed, rerank) is a span; a stage that is one cluster request (legs) is that request's span
    stage_spans = {s.attributes["eshybrid.stage"] for s in spans if s.name.startswith(tracing.SPAN_SEARCH + ".")}
    assert stage_spans >= {"embed", "rerank"}
    requests = [s for s in spans if s.name == tracing.SPAN_CLUSTER_REQUEST]
    assert requests and all(tracing.SPAN_SEARCH in ancestors(s) for s in requests)
    legs = [s for s in requests if s.attributes.get("eshybrid.stage") == "legs"]
    assert [s.attributes["db.operation.name"] for s in legs] == ["_msearch"]
    assert all(s.parent.span_id == root.context.span_id for s in legs)
    # every request the cluster received carries the traceparent of its own span
    received = {_ids(tp) for _, tp in proxy.traceparents}
    assert received == {(s.context.trace_id, s.context.span_id) for s in requests}


def test_the_embedding_service_receives_the_traceparent(embed_url: str, exporter: InMemorySpanExporter) -> None:
    parts = urlsplit(embed_url)
    with fault_proxy(f"{parts.scheme}://{parts.netloc}", share=0.0) as proxy:
        client = EmbeddingClient(proxy.url + parts.path, query_cache_size=0)
        try:
            with tracing.span(tracing.SPAN_SEARCH) as root:
                client.embed_query("waterproof tent")
        finally:
            client.close()
    paths = {path: _ids(tp) for path, tp in proxy.traceparents}
    assert any(path.endswith("/v1/embeddings") for path in paths), paths
    assert {trace for trace, _ in paths.values()} == {root.get_span_context().trace_id}
