"""Job metrics written as a node_exporter textfile, and the trace helpers with an in-memory exporter."""

from __future__ import annotations

from pathlib import Path

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client.parser import text_string_to_metric_families

from connector.observe import tracing
from connector.observe.jobs import JOB_SERIES, JobSample, write_job_textfile


def test_a_job_sample_becomes_a_textfile_with_the_documented_series(tmp_path: Path) -> None:
    sample = JobSample(
        kind="backfill",
        index="shop/products",
        outcomes={"updated": 90, "skipped": 5, "dead_lettered": 3, "vanished": 2},
        rate=12.5,
        retries=4,
        remaining=900,
        finished_at=1_800_000_000.0,
    )
    path = write_job_textfile(sample, tmp_path)
    assert path.name == "eshybrid_backfill_shop_products.prom"
    samples = {
        (s.name, s.labels.get("outcome")): s.value
        for family in text_string_to_metric_families(path.read_text())
        for s in family.samples
        if s.labels["job"] == "backfill" and s.labels["index"] == "shop/products"
    }
    assert samples[("eshybrid_job_documents", "updated")] == 90
    assert samples[("eshybrid_job_dead_letters", None)] == 3
    assert samples[("eshybrid_job_retries", None)] == 4
    assert samples[("eshybrid_job_lag_documents", None)] == 900
    assert samples[("eshybrid_job_documents_per_second", None)] == 12.5
    assert {name for name, _ in samples} == set(JOB_SERIES)
    assert list(tmp_path.iterdir()) == [path]  # no temp file left behind


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing.set_tracer_provider(provider)
    yield exporter
    tracing.set_tracer_provider(None)


def test_spans_nest_and_the_traceparent_names_the_current_span(exporter: InMemorySpanExporter) -> None:
    headers: dict[str, str] = {}
    with tracing.span(tracing.SPAN_SEARCH, {"eshybrid.mode": "hybrid"}):
        with tracing.stage_span("legs"):
            with tracing.cluster_request_span("post", "my-index/_msearch"):
                tracing.inject_trace_headers(headers)
    search, legs, request = sorted(exporter.get_finished_spans(), key=lambda s: s.start_time)
    assert (search.name, legs.name, request.name) == (
        "eshybrid.search",
        "eshybrid.search.legs",
        "eshybrid.cluster.request",
    )
    assert legs.parent.span_id == search.context.span_id and request.parent.span_id == legs.context.span_id
    assert len({search.context.trace_id, legs.context.trace_id, request.context.trace_id}) == 1
    assert request.attributes["db.operation.name"] == "_msearch" and request.attributes["http.request.method"] == "POST"
    version, trace_id, span_id, _ = headers["traceparent"].split("-")
    assert (int(trace_id, 16), int(span_id, 16)) == (request.context.trace_id, request.context.span_id)


def test_no_provider_means_no_headers_and_no_spans() -> None:
    headers: dict[str, str] = {}
    with tracing.span(tracing.SPAN_SEARCH):
        tracing.inject_trace_headers(headers)
    assert headers == {}


@pytest.mark.parametrize(
    ("path", "endpoint"),
    [
        ("my-index/_msearch", "_msearch"),
        ("/a,b/_search?x=1", "_search"),
        ("_cluster/health", "_cluster"),
        ("my-index", "{index}"),
        ("", "/"),
    ],
)
def test_cluster_paths_become_bounded_endpoints(path: str, endpoint: str) -> None:
    assert tracing.endpoint_of(path) == endpoint


def test_a_worker_thread_continues_the_callers_trace(exporter: InMemorySpanExporter) -> None:
    from concurrent.futures import ThreadPoolExecutor

    def request() -> None:
        with tracing.cluster_request_span("GET", "i/_search"):
            pass

    with ThreadPoolExecutor(max_workers=1) as pool, tracing.span(tracing.SPAN_SEARCH) as root:
        pool.submit(tracing.in_current_context(request)).result()
        pool.submit(request).result()  # without it: a trace of its own
    carried, lost = (s for s in exporter.get_finished_spans() if s.name == tracing.SPAN_CLUSTER_REQUEST)
    assert carried.parent.span_id == root.get_span_context().span_id
    assert lost.parent is None and lost.context.trace_id != root.get_span_context().trace_id


def test_observe_search_records_the_response_and_marks_errors(exporter: InMemorySpanExporter) -> None:
    from prometheus_client import CollectorRegistry

    from connector.observe.metrics import SearchMetrics
    from connector.observe.search import observe_search
    from connector.search.models import SearchResponse, SearchTimings

    registry = CollectorRegistry()
    metrics = SearchMetrics(registry)
    response = SearchResponse(
        index="products", query="secret text", mode="hybrid", strategy="client", page=1, size=10, max_depth=100,
        hits=[], timings=SearchTimings(search_ms=3.0, fuse_ms=0.2, total_ms=4.0),
    )  # fmt: skip
    with observe_search(mode="hybrid", index="products", metrics=metrics) as seen:
        seen.done(response)
    with pytest.raises(TimeoutError), observe_search(mode="knn", index="products", metrics=metrics):
        raise TimeoutError("cluster down")
    ok, failed = exporter.get_finished_spans()
    assert ok.attributes["eshybrid.stage.fuse_ms"] == 0.2 and ok.attributes["eshybrid.hits"] == 0
    assert "secret text" not in str(dict(ok.attributes))
    assert not failed.status.is_ok and failed.events[0].name == "exception"
    assert registry.get_sample_value("eshybrid_search_requests_total", {"mode": "hybrid", "strategy": "client"}) == 1
    assert registry.get_sample_value("eshybrid_search_errors_total", {"mode": "knn", "error": "TimeoutError"}) == 1


def test_a_stage_that_is_one_cluster_request_is_marked_on_that_request(exporter: InMemorySpanExporter) -> None:
    with tracing.span(tracing.SPAN_SEARCH):
        with tracing.cluster_stage("legs"):
            with tracing.cluster_request_span("POST", "i/_msearch"):
                pass
        with tracing.cluster_request_span("GET", "i/_search"):
            pass
    legs, other, _ = exporter.get_finished_spans()
    assert legs.attributes["eshybrid.stage"] == "legs" and "eshybrid.stage" not in other.attributes
