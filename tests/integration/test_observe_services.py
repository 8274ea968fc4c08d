"""``GET /metrics`` of the embedding, image and rerank services on a real Ray Serve: after traffic, the documented
Prometheus series carry the right counts (as deltas: the session's services may have answered other tests)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from connector.observe.metrics import SEARCH_SERIES, SERVICE_SERIES
from tests.fixtures.embedding import ServeInstance, test_embedding_settings

pytestmark = [pytest.mark.integration, pytest.mark.ray, pytest.mark.slow]

PROMETHEUS = "text/plain;version=0.0.4;q=0.3,*/*;q=0.1"  # what a Prometheus server sends (with openmetrics first)
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


@pytest.fixture(scope="module")
def own_embed_url(ray_serve: ServeInstance) -> Iterator[str]:
    """This branch's embedding app (``ESHYBRID_TEST_EMBED_URL`` may point at a service of another version)."""
    from embedding_service.deployment import build_app

    # a quarter CPU: the session's Ray has 2, and its embed, image and rerank apps hold half a CPU each already
    app = build_app(test_embedding_settings(num_cpus_per_replica=0.25), cluster_gpus=0)
    yield ray_serve.deploy(app, name="embed-observe", route_prefix="/embed-observe")
    ray_serve.delete("embed-observe")


def scrape(base_url: str, accept: str = PROMETHEUS) -> Samples:
    reply = httpx.get(f"{base_url}/metrics", headers={"Accept": accept}, timeout=30)
    assert reply.status_code == 200, reply.text
    assert reply.headers["content-type"].startswith("text/plain"), reply.headers
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(reply.text)
        for s in family.samples
    }


def delta(before: Samples, after: Samples, name: str, **labels: str) -> float:
    key = (name, frozenset(labels.items()))
    return after.get(key, 0.0) - before.get(key, 0.0)


def requests_delta(before: Samples, after: Samples, service: str, route: str, status: int) -> float:
    return delta(before, after, "eshybrid_http_requests_total", service=service, route=route, status=str(status))


def check_documented(samples: Samples, service: str) -> None:
    names = {name for name, labels in samples if ("service", service) in labels}
    for series in SERVICE_SERIES:
        assert any(name.startswith(series) for name in names), (series, sorted(names))


def test_embedding_metrics_count_requests_statuses_and_batches(own_embed_url: str) -> None:
    before = scrape(own_embed_url)
    with httpx.Client(base_url=own_embed_url, timeout=60) as client:
        for texts in (["a red tent"], ["a blue stove", "a lantern"]):
            assert client.post("/v1/embeddings", json={"input": texts}).status_code == 200
        assert client.post("/v1/embeddings", json={"input": []}).status_code == 422
        json_counters = client.get("/metrics").json()  # curl and people still get the JSON counters
    assert json_counters["texts"] >= 3
    after = scrape(own_embed_url)
    assert requests_delta(before, after, "embedding", "/v1/embeddings", 200) == 2
    assert requests_delta(before, after, "embedding", "/v1/embeddings", 422) == 1
    assert requests_delta(before, after, "embedding", "/metrics", 200) == 2  # the JSON read and the first scrape
    duration = "eshybrid_http_request_duration_seconds_count"
    assert delta(before, after, duration, service="embedding", route="/v1/embeddings") == 3
    assert delta(before, after, "eshybrid_service_batch_size_sum", service="embedding") == 3
    assert after[("eshybrid_service_queue_depth", frozenset({("service", "embedding")}))] == 0
    check_documented(after, "embedding")


def test_rerank_metrics_count_requests_and_pairs(rerank_url: str) -> None:
    before = scrape(rerank_url)
    body = {"query": "tent", "documents": ["a red tent", "a stove", "a lantern"]}
    with httpx.Client(base_url=rerank_url, timeout=60) as client:
        assert client.post("/v1/rerank", json=body).status_code == 200
        assert client.post("/v1/rerank", json={"query": "tent"}).status_code in (400, 422)
    after = scrape(rerank_url)
    assert requests_delta(before, after, "rerank", "/v1/rerank", 200) == 1
    bad = sum(requests_delta(before, after, "rerank", "/v1/rerank", status) for status in (400, 422))
    assert bad == 1
    assert delta(before, after, "eshybrid_service_batch_size_sum", service="rerank") == 3
    check_documented(after, "rerank")


def test_image_metrics_count_requests_and_batches(image_url: str) -> None:
    before = scrape(image_url)
    with httpx.Client(base_url=image_url, timeout=60) as client:
        assert client.post("/v1/embeddings", json={"input": ["a red circle", "a blue square"]}).status_code == 200
    after = scrape(image_url)
    assert requests_delta(before, after, "image", "/v1/embeddings", 200) == 1
    assert delta(before, after, "eshybrid_service_batch_size_sum", service="image") == 2
    check_documented(after, "image")


@pytest.fixture(
    scope="module", params=[pytest.param("es9", marks=pytest.mark.es9), pytest.param("os3", marks=pytest.mark.os3)]
)
def search_url(request: pytest.FixtureRequest, ray_serve: ServeInstance, own_embed_url: str) -> Iterator[str]:
    """A fresh search app (its replica's registry starts at zero) over a small index embedded by the service."""
    from connector import connect
    from connector.search.app import build_search_app
    from connector.search.settings import SearchServiceSettings
    from connector.services.embedding import EmbeddingClient
    from tests.fixtures.products import create_products_index, rows_of
    from tests.integration.test_hybrid_search_serve import PRODUCTS

    key = str(request.param)
    url = str(request.getfixturevalue(f"{key}_url"))
    index = f"test-observe-{uuid.uuid4().hex}"
    with connect(url) as cluster, EmbeddingClient(own_embed_url) as embedder:
        create_products_index(cluster, index, embedder, rows_of(PRODUCTS))
        settings = SearchServiceSettings(
            cluster_url=url, index=index, embed_url=own_embed_url, num_cpus_per_replica=0.1
        )
        name = f"search-observe-{key}"
        try:
            yield ray_serve.deploy(build_search_app(settings), name=name, route_prefix=f"/{name}")
        finally:
            ray_serve.delete(name)
            cluster.delete_index(index)


def test_search_metrics_count_searches_stages_cache_and_statuses(search_url: str) -> None:
    with httpx.Client(base_url=search_url, timeout=60) as client:
        for body in ({"text": "waterproof tent"}, {"text": "waterproof tent"}, {"text": "stove", "mode": "bm25"}):
            reply = client.post("/search", json=body)
            assert reply.status_code == 200, reply.text
        assert client.post("/search", json={"text": "tent", "size": 0}).status_code == 400
    samples = scrape(search_url)

    def value(name: str, **labels: str) -> float:
        return samples.get((name, frozenset(labels.items())), 0.0)

    strategy = {"strategy": ("server", "client")}  # the index's cluster picks the form; count both
    hybrid = sum(value("eshybrid_search_requests_total", mode="hybrid", strategy=s) for s in strategy["strategy"])
    assert hybrid == 2
    assert value("eshybrid_search_requests_total", mode="bm25", strategy="single") == 1
    assert value("eshybrid_search_duration_seconds_count", mode="hybrid") == 2
    assert value("eshybrid_search_stage_duration_seconds_count", stage="legs") == 3
    assert value("eshybrid_search_stage_duration_seconds_count", stage="embed") == 2  # the repeat: from the cache
    assert value("eshybrid_query_vector_cache_requests_total", result="hit") == 1
    assert value("eshybrid_query_vector_cache_requests_total", result="miss") == 1
    assert value("eshybrid_search_fallbacks_total", reason="vector") == 0
    ok = {"service": "search", "route": "/search"}
    assert value("eshybrid_http_requests_total", status="200", **ok) == 3
    assert value("eshybrid_http_requests_total", status="400", **ok) == 1
    reply = httpx.get(f"{search_url}/metrics", headers={"Accept": PROMETHEUS}, timeout=30)
    families = {family.name for family in text_string_to_metric_families(reply.text)}
    assert {series.removesuffix("_total") for series in SEARCH_SERIES} <= families  # errors_total: none yet
    check_documented(samples, "search")
