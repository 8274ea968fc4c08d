"""``GET /metrics`` of the embedding, image and rerank services on a real Ray Serve: after traffic, the documented
Prometheus series carry the right counts (as deltas: the session's services may have answered other tests)."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from connector.observe.metrics import SERVICE_SERIES
from tests.fixtures.embedding import ServeInstance, test_embedding_settings

pytestmark = [pytest.mark.integration, pytest.mark.ray, pytest.mark.slow]

PROMETHEUS = "text/plain;version=0.0.4;q=0.3,*/*;q=0.1"  # what a Prometheus server sends (with openmetrics first)
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


@pytest.fixture(scope="module")
def own_embed_url(ray_serve: ServeInstance) -> Iterator[str]:
    """This branch's embedding app (``ESHYBRID_TEST_EMBED_URL`` may point at a service of another version)."""
    from embedding_service.deployment import build_app

    app = build_app(test_embedding_settings(), cluster_gpus=0)
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
