"""The search endpoint on a real Ray Serve, composed with the real embedding deployment.

``POST /search`` must return the same hits (and explanations) as the library with the same
embedding service, and 4xx naming the field on bad requests. ``/ui`` serves the relevance workbench
(its browser tests are in test_workbench_browser.py; here: mounted under the app's route prefix).
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from connector import connect
from connector.search import HybridSearch
from connector.services.embedding import EmbeddingClient
from connector.workbench import build_workbench
from tests.fixtures.products import create_products_index, rows_of

pytestmark = [pytest.mark.integration, pytest.mark.ray]

PRODUCTS = [
    ("p1", "waterproof dome tent", "two person tent for rain and wind"),
    ("p2", "camping stove", "compact gas burner for cooking outdoors"),
    ("p3", "rain jacket", "breathable waterproof shell jacket"),
    ("p4", "sleeping bag", "warm down bag for winter nights"),
    ("p5", "hiking boots", "leather boots with a grippy sole"),
    ("p6", "folding chair", "light aluminium chair for the campsite"),
    ("p7", "headlamp", "bright LED lamp for night hikes"),
    ("p8", "tarp shelter", "ultralight tarp that keeps the rain off"),
]


@pytest.fixture(
    scope="module", params=[pytest.param("es9", marks=pytest.mark.es9), pytest.param("os3", marks=pytest.mark.os3)]
)
def served(
    request: pytest.FixtureRequest, ray_serve: Any, embed_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Any]]:
    """An index embedded by the real service, and the search app deployed for it."""
    from connector.search.app import build_search_app
    from connector.search.settings import SearchServiceSettings

    key = str(request.param)
    url = str(request.getfixturevalue(f"{key}_url"))
    index = f"test-serve-{uuid.uuid4().hex}"
    with connect(url) as cluster, EmbeddingClient(embed_url) as embedder:
        rows = [{**row, "price": 10 * int(row["_id"][1:])} for row in rows_of(PRODUCTS)]
        create_products_index(cluster, index, embedder, rows, extra_properties={"price": {"type": "integer"}})
        # Compose with the embedding deployment through its handle when the fixture runs it in this
        # Serve; over HTTP when it was reused from ESHYBRID_TEST_EMBED_URL.
        embed_app = "embed" if "embed" in ray_serve.apps else None
        settings = SearchServiceSettings(
            cluster_url=url,
            index=index,
            embed_app=embed_app,
            embed_url=None if embed_app else embed_url,
            num_cpus_per_replica=0.1,
        )
        name = f"search-{key}"
        ui = functools.partial(
            build_workbench, judgments_index=f"{index}-judgments", export_dir=tmp_path_factory.mktemp("judgments")
        )
        base = ray_serve.deploy(build_search_app(settings, ui=ui), name=name, route_prefix=f"/{name}")
        try:
            yield {"base": base, "url": url, "index": index, "embed_url": embed_url, "prefix": f"/{name}"}
        finally:
            ray_serve.delete(name)
            cluster.delete_index(index)
            cluster.delete_index(f"{index}-judgments")


def post(served: dict[str, Any], body: dict[str, Any]) -> httpx.Response:
    return httpx.post(served["base"] + "/search", json=body, timeout=60)


@pytest.mark.parametrize("mode", ["bm25", "knn", "hybrid"])
def test_endpoint_returns_the_library_hits(served: dict[str, Any], mode: str) -> None:
    request = {
        "text": "something to keep me dry in the rain",
        "mode": mode,
        "size": 5,
        "explain": True,
        "filters": [{"range": {"price": {"gte": 20}}}],
    }
    answer = post(served, request)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    with connect(served["url"]) as cluster, EmbeddingClient(served["embed_url"]) as embedder:
        library = HybridSearch(cluster, served["index"], embedder=embedder).search(
            request["text"], mode=mode, size=5, explain=True, filters=request["filters"]
        )
    assert [h["id"] for h in body["hits"]] == library.ids
    assert [h["score"] for h in body["hits"]] == pytest.approx([h.score for h in library.hits], rel=1e-4)
    assert body["strategy"] == library.strategy and body["mode"] == mode
    first = body["hits"][0]
    assert first["source"]["title"] and "embedding" not in first["source"]
    assert first["explanation"]["fused_score"] == pytest.approx(library.hits[0].explanation.fused_score, rel=1e-4)
    assert "p1" not in [h["id"] for h in body["hits"]]  # price 10 is filtered out
    if mode != "bm25":
        assert {"p3", "p8"} & {h["id"] for h in body["hits"]}


def test_endpoint_console_and_paging(served: dict[str, Any]) -> None:
    first = post(served, {"text": "tent", "size": 3, "page": 1, "console": True}).json()
    second = post(served, {"text": "tent", "size": 3, "page": 2}).json()
    whole = post(served, {"text": "tent", "size": 6, "source": False}).json()
    assert [h["id"] for h in first["hits"] + second["hits"]] == [h["id"] for h in whole["hits"]]
    assert first["console"].startswith("# eshybrid search") and served["index"] in first["console"]
    assert whole["hits"][0]["source"] is None


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        ({"text": "tent", "size": 0}, 400, "size"),
        ({"text": "tent", "mode": "fuzzy"}, 400, "mode"),
        ({"text": ""}, 400, "text"),
        ({"size": 3}, 400, "text"),
        ({"text": "tent", "filters": [{"query_string": {"query": "x"}}]}, 400, "filters[0]"),
        ({"text": "tent", "unknown": 1}, 400, "unknown"),
        ({"text": "tent", "size": 50, "page": 3}, 400, "page"),  # beyond max_depth 100
        ({"text": "tent", "fusion": {"method": "borda"}}, 400, "fusion.method"),
        ({"text": "tent", "index": "someone-elses-index"}, 403, "index"),
    ],
)
def test_bad_requests_get_4xx_naming_the_field(
    served: dict[str, Any], body: dict[str, Any], status: int, field: str
) -> None:
    answer = post(served, body)
    assert answer.status_code == status, answer.text
    error = answer.json()["error"]
    assert error["field"] == field and error["message"]


def test_the_workbench_is_served_under_the_apps_prefix(served: dict[str, Any]) -> None:
    """Both lists rendered by the replica, links under the route prefix, a grade stored and read back."""
    page = httpx.get(served["base"] + "/ui", params={"q": "rain", "a": "mode:hybrid", "b": "mode:bm25"}, timeout=60)
    assert page.status_code == 200, page.text
    html = page.text
    assert html.count('<section class="side"') == 2 and '<li class="hit"' in html
    assert f'href="{served["prefix"]}/ui/static/workbench.css"' in html
    assert "script-src 'self'" in page.headers["content-security-policy"]
    rated = httpx.post(
        served["base"] + "/ui/api/rate",
        json={"q": "rain", "doc": "p3", "grade": 3, "rater": "ci", "a": ["p3"]},
        timeout=60,
    )
    assert rated.status_code == 200, rated.text
    assert rated.json()["grades"] == {"p3": 3} and rated.json()["ndcg"]["a"] == 1.0
    script = httpx.get(served["base"] + "/ui/static/workbench.js", timeout=60)
    assert script.status_code == 200 and script.headers["content-type"].startswith("text/javascript")
