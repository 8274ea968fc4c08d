"""Never down with its helpers: the embedding service stops during a run of searches.

An embedding app of our own is deployed into the session's Ray Serve (NOT the shared service of
``ESHYBRID_TEST_EMBED_URL``), the index is embedded by it, then the app is deleted. Every search after that
answers the lexical result at once, flagged ``vector_fallback``: the library (``HybridSearch``) and
``POST /search`` (200, never 5xx). The breaker stops asking the dead service after a few failures.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from connector import connect
from connector.search import HybridSearch
from connector.services.embedding import EmbeddingClient
from tests.fixtures.products import create_products_index, rows_of

pytestmark = [pytest.mark.integration, pytest.mark.ray]

PRODUCTS = [
    ("p1", "waterproof dome tent", "two person tent for rain and wind"),
    ("p2", "camping stove", "compact gas burner for cooking outdoors"),
    ("p3", "rain jacket", "breathable waterproof shell jacket"),
    ("p4", "sleeping bag", "warm down bag for winter nights"),
    ("p5", "hiking boots", "leather boots with a grippy sole"),
    ("p6", "tarp shelter", "ultralight tarp that keeps the rain off"),
]
QUERIES = ["waterproof tent", "rain jacket", "warm sleeping bag", "hiking boots", "camping stove", "tarp"]


@pytest.fixture
def own_embedder(ray_serve: Any) -> Iterator[dict[str, Any]]:
    """An embedding app only this test uses (the test stops it)."""
    from embedding_service.deployment import build_app
    from tests.fixtures.embedding import test_embedding_settings

    name = f"embed-fallback-{uuid.uuid4().hex[:8]}"
    # a quarter CPU: the session's Ray has 2, and its embed, image and rerank apps hold half a CPU each already
    settings = test_embedding_settings(num_cpus_per_replica=0.25)
    url = ray_serve.deploy(build_app(settings, cluster_gpus=0), name=name, route_prefix=f"/{name}")
    state = {"name": name, "url": url, "alive": True}
    try:
        yield state
    finally:
        if state["alive"]:
            ray_serve.delete(name)


@pytest.mark.parametrize(
    "key", [pytest.param("es9", marks=pytest.mark.es9), pytest.param("os3", marks=pytest.mark.os3)]
)
def test_a_stopped_embedder_gives_flagged_lexical_answers(
    request: pytest.FixtureRequest, ray_serve: Any, own_embedder: dict[str, Any], key: str
) -> None:
    from connector.search.app import build_search_app
    from connector.search.settings import SearchServiceSettings

    url = str(request.getfixturevalue(f"{key}_url"))
    index = f"test-fallback-{uuid.uuid4().hex}"
    app_name = f"search-fallback-{key}"
    with connect(url) as cluster, EmbeddingClient(own_embedder["url"]) as loader:
        create_products_index(cluster, index, loader, rows_of(PRODUCTS))
        try:
            settings = SearchServiceSettings(
                cluster_url=url, index=index, embed_url=own_embedder["url"], num_cpus_per_replica=0.1,
                embed_budget_s=1.0,  # a loaded CI machine: the outage, not the budget, is this test's subject
            )  # fmt: skip
            base = ray_serve.deploy(build_search_app(settings), name=app_name, route_prefix=f"/{app_name}")
            embedder = EmbeddingClient(own_embedder["url"], timeout_s=1.0, max_retries=0)
            with HybridSearch(cluster, index, embedder=embedder, embed_budget_s=1.0, breaker_failures=2) as search:
                # "dome tent" is not among QUERIES: the query caches hold no vector of those
                before = search.search("dome tent", size=3)
                assert not before.vector_fallback and before.round_trips <= 2 and before.hits
                served = httpx.post(f"{base}/search", json={"text": "dome tent", "size": 3}, timeout=60)
                assert served.status_code == 200 and served.json()["vector_fallback"] is False
                assert served.json()["query_id"]

                if own_embedder["alive"]:
                    ray_serve.delete(own_embedder["name"])  # the embedding service goes away mid-run
                    own_embedder["alive"] = False
                for text in QUERIES:
                    started = time.perf_counter()
                    response = search.search(text, size=3)
                    took_s = time.perf_counter() - started
                    bm25 = search.search(text, size=3, mode="bm25")
                    assert response.vector_fallback and response.vector_fallback_reason, text
                    assert response.ids == bm25.ids and took_s < 2.0, (text, took_s)
                    answer = httpx.post(f"{base}/search", json={"text": text, "size": 3}, timeout=60)
                    assert answer.status_code == 200, answer.text
                    assert answer.json()["vector_fallback"] is True and answer.json()["hits"]
                # the open breaker answers at once, without asking the dead service
                assert "skipped" in (search.search("rain", size=3).vector_fallback_reason or "")
        finally:
            try:
                ray_serve.delete(app_name)
            finally:
                cluster.request("DELETE", f"/{index}")
