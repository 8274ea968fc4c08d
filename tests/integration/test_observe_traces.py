"""Traces on real servers: a search's cluster requests are spans of its trace, and the W3C ``traceparent`` the
cluster and the embedding service receive names those spans (read at a loopback proxy in front of each)."""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from connector.cluster.detect import connect
from connector.observe import tracing
from connector.search import HybridSearch
from connector.services.embedding import EmbeddingClient
from tests.integration._faultproxy import fault_proxy
from tests.integration.test_hybrid_search import QUERY_VECTORS, TableEmbedder, corpus, create_index

pytestmark = [pytest.mark.integration]


@pytest.fixture
def exporter() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing.set_tracer_provider(provider)
    yield exporter
    tracing.set_tracer_provider(None)


def _ids(traceparent: str) -> tuple[int, int]:
    _, trace_id, span_id, _ = traceparent.split("-")
    return int(trace_id, 16), int(span_id, 16)


def test_cluster_requests_are_spans_of_the_search_trace(
    cluster_url: str, index_name: str, exporter: InMemorySpanExporter
) -> None:
    with connect(cluster_url) as direct:
        create_index(direct, index_name, corpus())
    with fault_proxy(cluster_url, share=0.0) as proxy, connect(proxy.url) as cluster:
        search = HybridSearch(cluster, index_name, embedder=TableEmbedder(QUERY_VECTORS), max_depth=24)
        exporter.clear()
        proxy.traceparents.clear()
        with tracing.span(tracing.SPAN_SEARCH) as root:
            response = search.search("waterproof tent", mode="hybrid", strategy="client")
        assert response.hits
    trace_id = root.get_span_context().trace_id
    requests = [s for s in exporter.get_finished_spans() if s.name == tracing.SPAN_CLUSTER_REQUEST]
    assert requests and all(s.context.trace_id == trace_id for s in requests)
    assert {s.attributes["db.operation.name"] for s in requests} >= {"_msearch"}
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
