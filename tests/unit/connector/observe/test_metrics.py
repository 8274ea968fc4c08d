"""The Prometheus series: names, labels and counts after a few recorded searches and requests (no network)."""

from __future__ import annotations

import asyncio
import threading
import time
from array import array
from collections.abc import MutableMapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from connector.observe.metrics import (
    FALLBACK_REASONS,
    SEARCH_SERIES,
    SEARCH_STAGES,
    SERVICE_SERIES,
    SearchMetrics,
    ServiceMetrics,
    render,
    search_stage_ms,
    wants_prometheus,
)
from connector.search.models import QueryCorrection, SearchHit, SearchResponse, SearchTimings


def _samples(registry: Any) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    body, _ = render(registry)
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(body.decode())
        for sample in family.samples
    }


def _response(**fields: Any) -> SearchResponse:
    values: dict[str, Any] = {
        "index": "products",
        "query": "secret user text",
        "mode": "hybrid",
        "strategy": "client",
        "page": 1,
        "size": 10,
        "max_depth": 100,
        "hits": [SearchHit(id="d1", index="products", rank=1, score=1.0)],
        "timings": SearchTimings(embed_ms=4.0, search_ms=12.0, fuse_ms=0.5, total_ms=17.0),
    }
    return SearchResponse(**{**values, **fields})


def test_a_recorded_search_counts_its_stages_fallbacks_and_mode() -> None:
    registry = CollectorRegistry()
    metrics = SearchMetrics(registry)
    metrics.record(_response())
    correction = QueryCorrection(
        mode="auto", searched="x", lexical_text="x", rewrite_fallback=True, error="suggest failed"
    )
    metrics.record(
        _response(
            mode="hybrid+rerank", hits=[], rerank_fallback=True, rerank_fallback_reason="boom", correction=correction
        )
    )
    metrics.record_error("knn", TimeoutError("cluster down"))
    metrics.record_cache(hit=True)
    samples = _samples(registry)
    assert samples[("eshybrid_search_requests_total", (("mode", "hybrid"), ("strategy", "client")))] == 1
    assert samples[("eshybrid_search_requests_total", (("mode", "hybrid+rerank"), ("strategy", "client")))] == 1
    assert samples[("eshybrid_search_errors_total", (("error", "TimeoutError"), ("mode", "knn")))] == 1
    assert samples[("eshybrid_search_stage_duration_seconds_count", (("stage", "embed"),))] == 2
    assert samples[("eshybrid_search_stage_duration_seconds_count", (("stage", "legs"),))] == 2
    assert samples[("eshybrid_search_stage_duration_seconds_count", (("stage", "rerank"),))] == 0  # did not run
    assert samples[("eshybrid_search_stage_duration_seconds_sum", (("stage", "legs"),))] == pytest.approx(0.024)
    for reason, count in {"rerank": 1, "rewrite": 1, "correct": 1, "vector": 0}.items():
        assert samples[("eshybrid_search_fallbacks_total", (("reason", reason),))] == count
    assert samples[("eshybrid_search_zero_hits_total", (("mode", "hybrid+rerank"),))] == 1
    assert samples[("eshybrid_query_vector_cache_requests_total", (("result", "hit"),))] == 1
    assert samples[("eshybrid_query_vector_cache_requests_total", (("result", "miss"),))] == 0
    names = {name for name, _ in samples}
    for series in SEARCH_SERIES:
        assert any(name.startswith(series) for name in names), series
    # bounded labels: no query text, no index name, no free-text reason
    labels = {value for _, pairs in samples for _, value in pairs}
    assert not labels & {"secret user text", "products", "boom", "cluster down"}
    assert labels >= set(FALLBACK_REASONS) | set(SEARCH_STAGES)


def test_stage_times_are_read_from_the_timings_under_either_name() -> None:
    assert search_stage_ms(SearchTimings(search_ms=3.0, rerank_ms=1.0)) == {
        "correct": 0.0, "embed": 0.0, "legs": 3.0, "fuse": 0.0, "fetch": 0.0, "rerank": 1.0
    }  # fmt: skip

    class Recut:
        legs_ms = 5.0

    assert search_stage_ms(Recut()) == {"legs": 5.0}


def test_the_service_middleware_counts_routes_statuses_and_in_flight() -> None:
    registry = CollectorRegistry()
    depth = [3.0]
    metrics = ServiceMetrics("embedding", routes=["/v1/embeddings"], queue_depth=lambda: depth[0], registry=registry)

    async def app(scope: Any, receive: Any, send: Any) -> None:
        status = 429 if scope["path"] == "/v1/embeddings" and scope.get("overloaded") else 200
        await send({"type": "http.response.start", "status": status, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})

    counted = metrics.asgi_middleware(app)

    async def call(path: str, **scope: Any) -> None:
        async def send(message: MutableMapping[str, Any]) -> None:
            return None

        async def receive() -> MutableMapping[str, Any]:
            return {"type": "http.request"}

        await counted({"type": "http", "path": path, **scope}, receive, send)

    async def traffic() -> None:
        await call("/v1/embeddings")
        await call("/v1/embeddings")
        await call("/v1/embeddings", overloaded=True)
        await call("/some/user/path/42")
        await call("/embed/v1/embeddings", root_path="/embed")  # behind Ray Serve's route prefix

    asyncio.run(traffic())
    metrics.observe_batch(8)
    samples = _samples(registry)
    ok = (("route", "/v1/embeddings"), ("service", "embedding"), ("status", "200"))
    assert samples[("eshybrid_http_requests_total", ok)] == 3
    assert samples[("eshybrid_http_requests_total", (*ok[:2], ("status", "429")))] == 1
    assert (
        samples[("eshybrid_http_requests_total", (("route", "other"), ("service", "embedding"), ("status", "200")))]
        == 1
    )
    assert samples[("eshybrid_http_request_duration_seconds_count", ok[:2])] == 4
    assert samples[("eshybrid_http_requests_in_flight", (("service", "embedding"),))] == 0
    assert samples[("eshybrid_service_queue_depth", (("service", "embedding"),))] == 3
    assert samples[("eshybrid_service_batch_size_count", (("service", "embedding"),))] == 1
    names = {name for name, _ in samples}
    for series in SERVICE_SERIES:
        assert any(name.startswith(series) for name in names), series


@pytest.mark.parametrize(
    ("accept", "prometheus"),
    [
        (None, False),
        ("*/*", False),
        ("application/json", False),
        ("text/plain;version=0.0.4;q=0.3,*/*;q=0.1", True),
        ("application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5", True),
    ],
)
def test_prometheus_is_served_to_whoever_asks_for_it(accept: str | None, prometheus: bool) -> None:
    assert wants_prometheus(accept) is prometheus


def test_openmetrics_is_rendered_when_asked() -> None:
    registry = CollectorRegistry()
    SearchMetrics(registry)
    body, content_type = render(registry, "application/openmetrics-text;version=1.0.0")
    assert content_type.startswith("application/openmetrics-text") and body.endswith(b"# EOF\n")
    body, content_type = render(registry, "text/plain")
    assert content_type.startswith("text/plain") and b"eshybrid_search_requests_total" in body


def test_the_query_vector_cache_counts_hits_and_misses() -> None:
    from prometheus_client import REGISTRY

    from connector.services.embedding import QueryVectorCache

    def count(result: str) -> float:
        return REGISTRY.get_sample_value("eshybrid_query_vector_cache_requests_total", {"result": result}) or 0.0

    before = count("hit"), count("miss")
    cache = QueryVectorCache(4)
    cache.get(("query", "tent"))
    cache.put(("query", "tent"), array("d", [1.0]))
    cache.get(("query", "tent"))
    QueryVectorCache(0).get(("query", "tent"))  # no cache: no lookup counted
    assert (count("hit") - before[0], count("miss") - before[1]) == (1, 1)


def test_a_service_exposes_the_search_series_beside_its_own() -> None:
    service_registry, search_registry = CollectorRegistry(), CollectorRegistry()
    service = ServiceMetrics("search", routes=["/search"], registry=service_registry)
    search = SearchMetrics(search_registry)
    search.record(_response())
    body, _ = service.exposition("text/plain", also=[search.registry, service_registry])  # each registry once
    names = [f.name for f in text_string_to_metric_families(body.decode())]
    assert names.count("eshybrid_http_requests") == 1 and names.count("eshybrid_search_requests") == 1


def test_concurrent_first_calls_make_one_default_search_metrics(monkeypatch: pytest.MonkeyPatch) -> None:
    """A replica's first searches arrive together: they must share one ``SearchMetrics``, not register its series
    twice in the global registry (``DuplicatedTimeseries`` would fail the searches)."""
    import prometheus_client

    from connector.observe import metrics

    monkeypatch.setattr(prometheus_client, "REGISTRY", CollectorRegistry())
    monkeypatch.setattr(metrics, "_default", None)  # both put back afterwards: the process's own stays

    class _Slow(SearchMetrics):  # a replica under load: the window between the check and the registration
        def __init__(self) -> None:
            time.sleep(0.05)
            super().__init__()

    monkeypatch.setattr(metrics, "SearchMetrics", _Slow)
    barrier = threading.Barrier(16)

    def first_call() -> SearchMetrics:
        barrier.wait()
        return metrics.default_search_metrics()

    with ThreadPoolExecutor(16) as pool:
        made = list(pool.map(lambda _: first_call(), range(16)))
    assert len({id(m) for m in made}) == 1
    assert made[0].registry is prometheus_client.REGISTRY
