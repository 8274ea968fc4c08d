"""examples/fastapi_app.py against a real Elasticsearch 9 through the app's own ``AsyncElasticsearch``."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from connector import HybridSearch, connect
from tests.integration.test_hybrid_search import QUERY_VECTORS, TableEmbedder, corpus, create_index
from tests.integration.test_official_clients import AsyncTableEmbedder

pytestmark = [pytest.mark.integration, pytest.mark.es9]

elasticsearch = pytest.importorskip("elasticsearch")
pytest.importorskip("fastapi")


@pytest.fixture
def products(es9_url: str) -> Iterator[str]:
    index = f"test-fastapi-{uuid.uuid4().hex[:8]}"
    with connect(es9_url) as cluster:
        create_index(cluster, index, corpus())
        yield index
        cluster.delete_index(index)


def test_the_example_app_searches_through_the_apps_own_client(es9_url: str, products: str) -> None:
    if int(elasticsearch.__versionstr__.partition(".")[0]) != 9:
        pytest.skip("the ES 9 server is tested with the 9.x client")
    from fastapi.testclient import TestClient

    from examples.fastapi_app import create_app

    clients: list[object] = []

    def make_client() -> object:
        clients.append(elasticsearch.AsyncElasticsearch(es9_url))
        return clients[-1]

    app = create_app(make_client, products, make_embedder=AsyncTableEmbedder, max_depth=24)
    with connect(es9_url) as cluster:
        sync = HybridSearch(cluster, products, embedder=TableEmbedder(QUERY_VECTORS), max_depth=24)
        expected = sync.search("waterproof tent", size=5, explain=True, strategy="client").model_dump(mode="json")
    with TestClient(app) as http:
        bm25 = http.get("/search", params={"q": "waterproof tent", "mode": "bm25", "size": 3})
        assert bm25.status_code == 200 and bm25.json()["hits"][0]["id"] == "d13"
        hybrid = http.get("/search", params={"q": "waterproof tent", "size": 5, "explain": "true"}).json()
        assert [h["id"] for h in hybrid["hits"]] == [h["id"] for h in expected["hits"]]
        assert hybrid["hits"][0]["explanation"] == expected["hits"][0]["explanation"]
        bad = http.get("/search", params={"q": "waterproof tent", "mode": "sideways"})
        assert bad.status_code == 400 and bad.json()["field"] == "mode"
        assert http.get("/search", params={"q": ""}).status_code == 422
    assert len(clients) == 1  # one client for the app's life, closed at shutdown
