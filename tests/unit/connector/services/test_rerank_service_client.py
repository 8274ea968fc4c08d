"""RerankClient against an in-memory transport (no network): order of results and scores, top_n,
the typed /info, health, and answers that do not fit the request."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from connector.errors import RerankServiceUnavailable
from connector.services.rerank import RerankClient, RerankResult
from connector.services.wire import RerankServiceInfo

INFO = {
    "model_id": "tiny-cross-encoder",
    "revision": None,
    "kind": "cross_encoder",
    "max_length": 64,
    "max_query_share": 0.5,
    "batch_size": 8,
    "device": "cpu",
    "dtype": "float32",
    "score": "logit",
    "num_labels": 1,
    "max_documents_per_request": 200,
    "max_query_chars": 2000,
    "max_chars_per_document": 20000,
    "max_batch_pairs": 256,
    "torch_threads": 1,
    "a_field_from_a_newer_service": True,
}


class FakeService:
    """Scores a document by its length; ``results`` replaces the answer's results when set."""

    def __init__(self, *, results: Any = None, info: dict[str, Any] | None = None) -> None:
        self.results = results
        self.info = INFO if info is None else info
        self.paths: list[str] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.paths.append(request.url.path)
        if request.url.path.endswith("/info"):
            return httpx.Response(200, json=self.info)
        if request.url.path.endswith("/healthz"):
            return httpx.Response(200, json={"status": "ok"})
        body = json.loads(request.content)
        ranked = sorted(
            ({"index": i, "relevance_score": float(len(d))} for i, d in enumerate(body["documents"])),
            key=lambda r: -r["relevance_score"],
        )[: body.get("top_n")]
        results = ranked if self.results is None else self.results
        return httpx.Response(200, json={"results": results, "model": "served-model", "usage": {"total_tokens": 9}})


def _client(service: FakeService) -> RerankClient:
    return RerankClient("http://svc/rerank/", transport=httpx.MockTransport(service))


def test_rerank_sorted_and_score_in_input_order() -> None:
    service = FakeService()
    with _client(service) as client:
        reply = client.rerank("q", ["aa", "a", "aaa"])
        assert reply.results == [RerankResult(2, 3.0), RerankResult(0, 2.0), RerankResult(1, 1.0)]
        assert (reply.model, reply.total_tokens) == ("served-model", 9)
        assert client.score("q", ["aa", "a", "aaa"]) == [2.0, 1.0, 3.0]
        assert [r.index for r in client.rerank("q", ["aa", "a", "aaa"], top_n=2).results] == [2, 0]
        assert client.score("q", []) == []
        assert client.model_id == "served-model"  # from the last answer, no /info call
    assert service.paths == ["/rerank/v1/rerank"] * 3


def test_info_is_typed_and_tolerates_new_fields() -> None:
    service = FakeService()
    with _client(service) as client:
        info = client.info()
        assert isinstance(info, RerankServiceInfo)
        assert (info.model_id, info.kind, info.max_length, info.num_labels) == (
            "tiny-cross-encoder",
            "cross_encoder",
            64,
            1,
        )
        assert client.info() is info and client.model_id == "tiny-cross-encoder"
        assert client.healthy()
    assert service.paths == ["/rerank/info", "/rerank/healthz"]


def test_info_that_is_not_a_rerank_services() -> None:
    with _client(FakeService(info={"model_id": "m"})) as client, pytest.raises(RerankServiceUnavailable, match="/info"):
        client.info()


def test_unhealthy_when_unreachable() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    with RerankClient("http://svc/rerank", transport=httpx.MockTransport(refuse), max_retries=0) as client:
        assert not client.healthy(timeout_s=0.5)


@pytest.mark.parametrize(
    "results",
    [
        [{"index": 0, "relevance_score": 1.0}],  # one result for two documents
        [{"index": 0, "relevance_score": 1.0}, {"index": 0, "relevance_score": 2.0}],  # repeated index
        [{"index": 0, "relevance_score": 1.0}, {"index": 5, "relevance_score": 2.0}],  # index out of range
        [{"index": 0}, {"index": 1}],  # no scores
        "not a list",
    ],
)
def test_answers_that_do_not_fit_the_request_are_unavailable(results: Any) -> None:
    with _client(FakeService(results=results)) as client, pytest.raises(RerankServiceUnavailable):
        client.score("q", ["a", "b"])
