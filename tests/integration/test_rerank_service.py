"""The rerank service on a real Ray Serve, with tiny local models, and apply_rerank against it.

Scores are compared with the same model run directly through transformers.
"""

from __future__ import annotations

import concurrent.futures
import json
import logging
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

import rerank
from connector.errors import RerankRequestError, RerankTimeout
from connector.search.rerank import InProcessReranker, RerankConfig, apply_rerank, hit_id
from connector.services.rerank import RerankClient
from tests.fixtures.embedding import ServeInstance, free_port
from tests.fixtures.rerank import (
    CORPUS,
    LLM_TEMPLATE,
    deploy_rerank,
    direct_cross_encoder_logits,
    direct_llm_scores,
    test_rerank_settings,
)

pytestmark = [pytest.mark.integration, pytest.mark.ray]

TOL = 1e-4
QUERY = "waterproof case for running"
API_KEY = "test-key"
# Short and long texts: more pairs than the batch size (8), some cut at 64 tokens.
_ROTATED = [" ".join(CORPUS[i:] + CORPUS[:i]) for i in range(len(CORPUS))]
DOCUMENTS = [_ROTATED[i % 10][: 30 + 23 * (i % 11)] for i in range(40)] + [_ROTATED[i] * 2 for i in range(5)]


@pytest.fixture(scope="module")
def direct_scores(cross_encoder_path: Path) -> list[float]:
    return direct_cross_encoder_logits(cross_encoder_path, QUERY, DOCUMENTS)[:, 0].tolist()


@pytest.fixture(scope="module")
def client(rerank_url: str) -> Iterator[RerankClient]:
    with RerankClient(rerank_url, timeout_s=60.0) as rerank_client:
        yield rerank_client


@pytest.fixture(scope="module")
def strict_url(ray_serve: ServeInstance, llm_reranker_path: Path) -> Iterator[str]:
    """The LLM reranker with a bearer token, a long batch wait and a small pending budget."""
    settings = test_rerank_settings(
        llm_reranker_path,
        model_id="tiny-llm",
        llm_template=LLM_TEMPLATE,
        api_key=API_KEY,
        batch_wait_timeout_s=0.3,
        max_pending_pairs=10,
        max_batch_pairs=64,
        app_name="rerank-strict",
        route_prefix="/rerank-strict",
    )
    url = deploy_rerank(ray_serve, settings)
    yield url
    ray_serve.delete(settings.app_name)


def test_service_scores_equal_the_model_run_directly(client: RerankClient, direct_scores: list[float]) -> None:
    assert sum(len(d.split()) > 64 for d in DOCUMENTS) >= 5  # some pairs are truncated
    scores = client.score(QUERY, DOCUMENTS)
    assert scores == pytest.approx(direct_scores, abs=TOL)


def test_results_are_sorted_by_score(client: RerankClient, direct_scores: list[float]) -> None:
    reply = client.rerank(QUERY, DOCUMENTS)
    assert reply.model == "tiny-cross-encoder"
    assert reply.total_tokens > len(DOCUMENTS)
    by_direct = sorted(range(len(DOCUMENTS)), key=lambda i: (-direct_scores[i], i))
    assert [r.index for r in reply.results] == by_direct
    scores = [r.relevance_score for r in reply.results]
    assert scores == sorted(scores, reverse=True)


def test_top_n_and_return_documents(rerank_url: str, direct_scores: list[float]) -> None:
    response = httpx.post(
        f"{rerank_url}/v1/rerank",
        timeout=60.0,
        json={"query": QUERY, "documents": DOCUMENTS[:5], "top_n": 2, "return_documents": True},
    )
    assert response.status_code == 200
    results = response.json()["results"]
    best = sorted(range(5), key=lambda i: -direct_scores[i])[:2]
    assert [r["index"] for r in results] == best
    assert [r["document"]["text"] for r in results] == [DOCUMENTS[i] for i in best]


def test_healthz_info_metrics(rerank_url: str, client: RerankClient) -> None:
    assert httpx.get(f"{rerank_url}/healthz").json() == {"status": "ok"}
    info = client.info()  # the /info contract (connector.services.wire.RerankServiceInfo)
    assert info.model_id == "tiny-cross-encoder" and info.kind == "cross_encoder"
    assert info.max_length == 64 and info.device == "cpu" and info.dtype == "float32"
    body = httpx.get(f"{rerank_url}/info").json()
    assert "template" not in body and body["num_labels"] == 1  # a cross-encoder's answer has no LLM fields
    assert client.healthy()
    metrics = httpx.get(f"{rerank_url}/metrics").json()
    assert metrics["pairs_total"] >= len(DOCUMENTS) and metrics["pending_pairs"] == 0


@pytest.mark.parametrize(
    ("content", "status"),
    [
        (json.dumps({"query": QUERY, "documents": []}), 422),
        (json.dumps({"query": QUERY, "documents": ["ok", 42]}), 422),
        (json.dumps({"query": QUERY, "documents": ["d"] * 201}), 422),
        (json.dumps({"documents": ["d"]}), 422),
        (json.dumps({"query": QUERY, "documents": ["d"], "top_n": -1}), 422),
        ('{"query": "q", "documents": ["d"', 400),
        ("[]", 400),
    ],
)
def test_bad_requests_get_4xx(rerank_url: str, content: str, status: int) -> None:
    response = httpx.post(
        f"{rerank_url}/v1/rerank", content=content, headers={"content-type": "application/json"}, timeout=30.0
    )
    assert response.status_code == status
    assert response.json()["error"]["message"]


def test_client_maps_4xx_to_request_errors(client: RerankClient) -> None:
    with pytest.raises(RerankRequestError) as caught:
        client.rerank(QUERY, [])
    assert caught.value.status == 422 and caught.value.param == "documents"


def test_llm_service_scores_and_auth(strict_url: str, llm_reranker_path: Path) -> None:
    assert httpx.get(f"{strict_url}/healthz").status_code == 200
    assert httpx.post(f"{strict_url}/v1/rerank", json={"query": "q", "documents": ["a"]}).status_code == 401
    with RerankClient(strict_url, api_key="wrong", timeout_s=30.0) as wrong:
        with pytest.raises(RerankRequestError) as caught:
            wrong.score("q", ["a"])
        assert caught.value.status == 401
    documents = list(CORPUS) + [" ".join(CORPUS * 20)]
    with RerankClient(strict_url, api_key=API_KEY, timeout_s=60.0) as client:
        scores = client.score(QUERY, documents)
        assert client.info().kind == "llm" and client.info().yes_token == "yes"
    direct = direct_llm_scores(llm_reranker_path, LLM_TEMPLATE, QUERY, documents[:-1])
    assert scores[:-1] == pytest.approx(direct, abs=TOL)
    assert 0.0 < scores[-1] < 1.0  # the long document was cut to fit, not refused


def _post(url: str, body: dict[str, Any]) -> httpx.Response:
    return httpx.post(f"{url}/v1/rerank", json=body, headers={"Authorization": f"Bearer {API_KEY}"}, timeout=60.0)


def test_concurrent_searches_share_a_batch(strict_url: str) -> None:
    queries = ["red shoes", "green tea", "usb cable", "lego set"]
    alone = [_post(strict_url, {"query": q, "documents": list(CORPUS[:2])}).json()["results"] for q in queries]
    with concurrent.futures.ThreadPoolExecutor(len(queries)) as pool:
        together = list(pool.map(lambda q: _post(strict_url, {"query": q, "documents": list(CORPUS[:2])}), queries))
    for expected, response in zip(alone, together, strict=True):
        assert response.status_code == 200
        assert [r["index"] for r in response.json()["results"]] == [r["index"] for r in expected]
        got = [r["relevance_score"] for r in response.json()["results"]]
        assert got == pytest.approx([r["relevance_score"] for r in expected], abs=TOL)
    metrics = httpx.get(f"{strict_url}/metrics", headers={"Authorization": f"Bearer {API_KEY}"}).json()
    assert metrics["max_batch_pairs_seen"] > 2  # one batch held pairs of several requests


def test_full_queue_gets_429(strict_url: str) -> None:
    body = {"query": "q", "documents": list(CORPUS[:8])}
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        first = pool.submit(_post, strict_url, body)
        time.sleep(0.1)  # the first request now waits for its batch (0.3 s) with 8 of 10 pairs pending
        second = _post(strict_url, body)
        responses = [first.result(), second]
    assert sorted(r.status_code for r in responses) == [200, 429]
    rejected = next(r for r in responses if r.status_code == 429)
    assert int(rejected.headers["retry-after"]) >= 1
    assert rejected.json()["error"]["type"] == "rate_limit_error"


def _fused_hits() -> list[dict[str, Any]]:
    return [{"_id": f"doc-{i}", "_source": {"title": document, "price": i}} for i, document in enumerate(DOCUMENTS)]


def test_apply_rerank_through_the_service(rerank_url: str, direct_scores: list[float]) -> None:
    config = RerankConfig(url=rerank_url, top_k=20, fields=("title",), timeout_s=30.0)
    outcome = apply_rerank(QUERY, _fused_hits(), config)
    assert not outcome.fallback and outcome.reason is None
    expected = sorted(range(20), key=lambda i: (-direct_scores[i], i)) + list(range(20, len(DOCUMENTS)))
    assert [hit_id(h) for h in outcome.hits] == [f"doc-{i}" for i in expected]
    assert outcome.rerank_scores[:20] == pytest.approx([direct_scores[i] for i in expected[:20]], abs=TOL)
    assert outcome.rerank_scores[20:] == [None] * (len(DOCUMENTS) - 20)
    again = apply_rerank(QUERY, _fused_hits(), config)  # answered from the score cache
    assert [hit_id(h) for h in again.hits] == [hit_id(h) for h in outcome.hits]
    assert config.backend().hits >= 20  # type: ignore[attr-defined]


def test_apply_rerank_falls_back_when_the_service_is_down(caplog: pytest.LogCaptureFixture) -> None:
    config = RerankConfig(url=f"http://127.0.0.1:{free_port()}/rerank", top_k=10, fields=("title",))
    with caplog.at_level(logging.WARNING, logger="connector.search.rerank"):
        outcome = apply_rerank(QUERY, _fused_hits(), config)
    assert outcome.fallback and "RerankServiceUnavailable" in (outcome.reason or "")
    assert [hit_id(h) for h in outcome.hits] == [f"doc-{i}" for i in range(len(DOCUMENTS))]
    assert outcome.rerank_scores == [None] * len(DOCUMENTS)
    assert "fused order" in caplog.text


def test_apply_rerank_falls_back_when_over_budget(rerank_url: str, caplog: pytest.LogCaptureFixture) -> None:
    config = RerankConfig(url=rerank_url, top_k=40, fields=("title",), timeout_s=0.001, cache_size=0)
    started = time.perf_counter()
    with caplog.at_level(logging.WARNING, logger="connector.search.rerank"):
        outcome = apply_rerank(QUERY, _fused_hits(), config)
    assert time.perf_counter() - started < 1.0
    assert outcome.fallback and "RerankTimeout" in (outcome.reason or "")
    assert [hit_id(h) for h in outcome.hits] == [f"doc-{i}" for i in range(len(DOCUMENTS))]
    assert "fused order" in caplog.text
    with pytest.raises(RerankTimeout):
        RerankClient(rerank_url, timeout_s=0.001).score(QUERY, DOCUMENTS)


def test_in_process_adapter_matches_the_service(cross_encoder_path: Path, client: RerankClient) -> None:
    adapter = InProcessReranker(rerank.load_in_process(str(cross_encoder_path), batch_size=4))
    assert adapter.score(QUERY, DOCUMENTS[:12], timeout_s=60.0) == pytest.approx(
        client.score(QUERY, DOCUMENTS[:12]), abs=TOL
    )
    adapter.close()


def test_replicas_start_at_the_niceness_asked(ray_serve: ServeInstance, cross_encoder_path: Path) -> None:
    """``niceness`` reaches the replica process (Ray starts every worker at 15): a model service sharing a node
    with the search yields the cores to it while it starts or batches."""
    from tests.fixtures.soak_stack import replica_processes

    app = f"rerank-nice-{uuid.uuid4().hex[:8]}"  # its own name: no other run's replica can answer for it
    settings = test_rerank_settings(
        cross_encoder_path,
        model_id="tiny-cross-encoder",
        app_name=app,
        route_prefix=f"/{app}",
        niceness=19,
        num_cpus_per_replica=0.0,  # the session's other apps may hold every Ray CPU: it must be placed all the same
    )
    url = deploy_rerank(ray_serve, settings)
    try:
        assert httpx.get(f"{url}/healthz", timeout=30).status_code == 200
        replicas = replica_processes(app)
        assert replicas and {p.nice() for p in replicas} == {19}, [(p.pid, p.nice(), p.cmdline()) for p in replicas]
    finally:
        ray_serve.delete(settings.app_name)
