"""Request rules, response shape and status codes of the rerank app (in-process ASGI, no Ray, no model)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

pytest.importorskip("fastapi")

from fastapi.testclient import TestClient  # noqa: E402

from rerank.api import MalformedRequestError, check_request, parse_request, rank_results  # noqa: E402
from rerank.app import create_app  # noqa: E402
from rerank.errors import RerankInputError, RerankOverloaded  # noqa: E402
from rerank.models import ScoredPairs  # noqa: E402
from rerank.settings import RerankSettings  # noqa: E402


class _WordOverlap:
    """A stand-in backend: score = shared words; ``overloaded`` makes it answer like a full replica."""

    def __init__(self, settings: RerankSettings) -> None:
        self.settings = settings
        self.overloaded = False

    async def score(self, query: str, documents: list[str]) -> ScoredPairs:
        if self.overloaded:
            raise RerankOverloaded("full", retry_after_s=2.5)
        await asyncio.sleep(0)
        words = set(query.split())
        return ScoredPairs([float(len(words & set(d.split()))) for d in documents], [len(d.split()) for d in documents])

    def info(self) -> dict[str, Any]:
        return {"model_id": self.settings.reported_model_id}

    def metrics(self) -> dict[str, Any]:
        return {"requests_total": 0}


def _client(**settings: Any) -> tuple[TestClient, _WordOverlap]:
    backend = _WordOverlap(
        RerankSettings(
            model="/models/x",
            model_id="word-overlap",
            max_documents_per_request=5,
            max_query_chars=50,
            max_chars_per_document=40,
            **settings,
        )
    )
    return TestClient(create_app(backend)), backend


def test_rank_results_sorted_ties_by_index_and_top_n() -> None:
    assert rank_results([0.1, 0.9, 0.5, 0.9]) == [
        {"index": 1, "relevance_score": 0.9},
        {"index": 3, "relevance_score": 0.9},
        {"index": 2, "relevance_score": 0.5},
        {"index": 0, "relevance_score": 0.1},
    ]
    assert [r["index"] for r in rank_results([0.1, 0.9, 0.5], top_n=2)] == [1, 2]
    assert rank_results([0.3], documents=["a"]) == [{"index": 0, "relevance_score": 0.3, "document": {"text": "a"}}]


@pytest.mark.parametrize(
    ("body", "error", "field"),
    [
        (b"{not json", MalformedRequestError, None),
        (b"[1, 2]", MalformedRequestError, None),
        (b'{"documents": ["a"]}', RerankInputError, "query"),
        (b'{"query": "", "documents": ["a"]}', RerankInputError, "query"),
        (b'{"query": "q", "documents": []}', RerankInputError, "documents"),
        (b'{"query": "q", "documents": ["a", 3]}', RerankInputError, "documents[1]"),
        (b'{"query": "q", "documents": "a"}', RerankInputError, "documents"),
        (b'{"query": "q", "documents": ["a"], "top_n": 0}', RerankInputError, "top_n"),
        (b'{"query": "q", "documents": ["a"], "texts": ["b"]}', RerankInputError, "texts"),
    ],
)
def test_parse_request_rejects(body: bytes, error: type[Exception], field: str | None) -> None:
    with pytest.raises(error) as caught:
        parse_request(body)
    assert getattr(caught.value, "field", None) == field


def test_check_request_limits_and_model() -> None:
    limits = {"model_id": "org/model", "max_documents": 2, "max_query_chars": 5, "max_chars_per_document": 3}
    check_request(parse_request(b'{"query": "q", "documents": ["abc"], "model": "model"}'), **limits)
    for body, field in [
        (b'{"query": "q", "documents": ["a", "b", "c"]}', "documents"),
        (b'{"query": "qqqqqq", "documents": ["a"]}', "query"),
        (b'{"query": "q", "documents": ["a", "abcd"]}', "documents[1]"),
        (b'{"query": "q", "documents": ["a"], "model": "other"}', "model"),
    ]:
        with pytest.raises(RerankInputError) as caught:
            check_request(parse_request(body), **limits)
        assert caught.value.field == field


def test_rerank_answers_the_cohere_shape() -> None:
    client, _ = _client()
    response = client.post(
        "/v1/rerank",
        json={"query": "red shoes", "documents": ["tea", "red shoes", "red"], "top_n": 2, "return_documents": True},
    )
    assert response.status_code == 200
    assert response.json() == {
        "results": [
            {"index": 1, "relevance_score": 2.0, "document": {"text": "red shoes"}},
            {"index": 2, "relevance_score": 1.0, "document": {"text": "red"}},
        ],
        "model": "word-overlap",
        "usage": {"prompt_tokens": 4, "total_tokens": 4},
    }
    assert "document" not in client.post("/v1/rerank", json={"query": "a", "documents": ["a"]}).json()["results"][0]


@pytest.mark.parametrize(
    ("content", "status"),
    [
        (b"{oops", 400),
        (b'"just a string"', 400),
        (b'{"documents": ["a"]}', 422),
        (b'{"query": "q", "documents": []}', 422),
        (b'{"query": "q", "documents": [null]}', 422),
        (json.dumps({"query": "q", "documents": ["a"] * 6}).encode(), 422),
        (json.dumps({"query": "q", "documents": ["a" * 41]}).encode(), 422),
        (json.dumps({"query": "q", "documents": ["a"], "model": "someone-else"}).encode(), 422),
    ],
)
def test_bad_requests_get_4xx_with_an_error_body(content: bytes, status: int) -> None:
    client, _ = _client()
    response = client.post("/v1/rerank", content=content, headers={"content-type": "application/json"})
    assert response.status_code == status
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error" and error["message"]


def test_overloaded_backend_gives_429_with_retry_after() -> None:
    client, backend = _client()
    backend.overloaded = True
    response = client.post("/v1/rerank", json={"query": "q", "documents": ["a"]})
    assert response.status_code == 429
    assert response.headers["retry-after"] == "3"
    assert response.json()["error"]["type"] == "rate_limit_error"


def test_bearer_auth_guards_everything_but_healthz() -> None:
    client, _ = _client(api_key="s3cret")
    assert client.get("/healthz").json() == {"status": "ok"}
    for method, path, kwargs in [
        ("GET", "/info", {}),
        ("GET", "/metrics", {}),
        ("POST", "/v1/rerank", {"json": {"query": "q", "documents": ["a"]}}),
    ]:
        assert client.request(method, path, **kwargs).status_code == 401
        wrong = client.request(method, path, headers={"Authorization": "Bearer nope"}, **kwargs)
        assert wrong.status_code == 401 and wrong.headers["www-authenticate"] == "Bearer"
        right = client.request(method, path, headers={"Authorization": "Bearer s3cret"}, **kwargs)
        assert right.status_code == 200
