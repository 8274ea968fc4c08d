"""EmbeddingClient behaviour against an in-memory transport (no network): batching, order, retries
with Retry-After, error mapping, the query cache and the model check."""

from __future__ import annotations

import base64
import json
import logging
import sys
import threading
import time
from collections.abc import Callable

import httpx
import numpy as np
import pytest

from connector.errors import (
    EmbeddingError,
    EmbeddingOverloaded,
    EmbeddingRequestError,
    EmbeddingServiceUnavailable,
    ModelMismatchError,
)
from connector.services.embedding import EmbeddingClient, ServiceInfo
from connector.services.wire import vector_model_id

INFO = {
    "model_id": "sentence-transformers/all-MiniLM-L6-v2",
    "revision": "r1",
    "dims": 3,
    "max_length": 256,
    "pooling": "mean",
    "normalized": True,
    "device": "cpu",
    "dtype": "float32",
    "query_prefix": "",
    "document_prefix": "",
    "max_items_per_request": 10,
    "max_chars_per_item": 100,
    "future_key": 1,
}


def _vector(text: str) -> list[float]:
    return [float(len(text)), float(ord(text[0]) if text else 0), 1.0]


class FakeService:
    """Answers like the real service; ``script`` can inject statuses for the first calls."""

    def __init__(self, script: list[tuple[int, dict[str, str]]] | None = None, *, reverse: bool = True) -> None:
        self.script = list(script or [])
        self.calls: list[dict[str, object]] = []
        self.reverse = reverse
        self.lock = threading.Lock()

    def __call__(self, request: httpx.Request) -> httpx.Response:
        with self.lock:
            body = json.loads(request.content) if request.content else None
            self.calls.append({"path": request.url.path, "body": body, "auth": request.headers.get("authorization")})
            if self.script:
                status, headers = self.script.pop(0)
                return httpx.Response(
                    status, headers=headers, json={"error": {"message": "scripted", "param": "input"}}
                )
        if request.url.path.endswith("/info"):
            return httpx.Response(200, json=INFO)
        texts = body["input"]
        data = [
            {
                "object": "embedding",
                "index": i,
                "embedding": base64.b64encode(np.array(_vector(t), dtype="<f4").tobytes()).decode(),
            }
            for i, t in enumerate(texts)
        ]
        if self.reverse:  # order by "index", never by position
            data.reverse()
        return httpx.Response(
            200,
            json={
                "object": "list",
                "data": data,
                "model": INFO["model_id"],
                "usage": {"prompt_tokens": 1, "total_tokens": 1},
            },
        )


def _client(handler: Callable[[httpx.Request], httpx.Response], **options: object) -> EmbeddingClient:
    options.setdefault("max_backoff_s", 0.05)
    return EmbeddingClient("http://svc/embed", transport=httpx.MockTransport(handler), **options)  # type: ignore[arg-type]


def test_batches_keep_input_order_and_length() -> None:
    service = FakeService()
    texts = [f"text {'x' * i}" for i in range(23)]
    with _client(service, batch_size=5, max_concurrency=3, api_key="tok") as client:
        vectors = client.embed_documents(texts)
    assert vectors == [_vector(t) for t in texts]
    posts = [c for c in service.calls if c["path"] == "/embed/v1/embeddings"]
    assert sorted(len(c["body"]["input"]) for c in posts) == [3, 5, 5, 5, 5]  # type: ignore[index]
    assert all(c["body"]["input_type"] == "document" for c in posts)  # type: ignore[index]
    assert all(c["auth"] == "Bearer tok" for c in service.calls)
    assert client.embed_documents([]) == []


def test_query_vectors_are_cached() -> None:
    service = FakeService()
    with _client(service, query_cache_size=2) as client:
        first = client.embed_query("shoes")
        assert client.embed_query("shoes") == first
        client.embed_query("boots")
        client.embed_query("socks")  # evicts "shoes"
        client.embed_query("shoes")
    bodies = [c["body"] for c in service.calls]
    assert [b["input"] for b in bodies] == [["shoes"], ["boots"], ["socks"], ["shoes"]]  # type: ignore[index]
    assert all(b["input_type"] == "query" for b in bodies)  # type: ignore[index]


def test_429_is_retried_after_retry_after() -> None:
    service = FakeService(script=[(429, {"Retry-After": "1"})])
    started = time.monotonic()
    with _client(service) as client:
        assert client.embed_documents(["a"]) == [_vector("a")]
    assert time.monotonic() - started >= 1.0
    assert len(service.calls) == 2


def test_503_then_success_and_overload_that_never_ends() -> None:
    with _client(FakeService(script=[(503, {}), (502, {})])) as client:
        assert client.embed_documents(["b"]) == [_vector("b")]
    never = FakeService(script=[(429, {"Retry-After": "0"})] * 3)
    with _client(never, max_retries=2) as client, pytest.raises(EmbeddingOverloaded) as err:
        client.embed_documents(["c"])
    assert err.value.status == 429 and len(never.calls) == 3


def test_client_errors_are_not_retried() -> None:
    service = FakeService(script=[(422, {})])
    with _client(service) as client, pytest.raises(EmbeddingRequestError) as err:
        client.embed_documents(["d"])
    assert err.value.status == 422 and err.value.param == "input"
    assert len(service.calls) == 1
    with _client(FakeService(script=[(500, {})])) as client, pytest.raises(EmbeddingServiceUnavailable):
        client.embed_documents(["e"])


def test_connection_errors_become_service_unavailable_after_retries() -> None:
    attempts = []

    def refuse(request: httpx.Request) -> httpx.Response:
        attempts.append(1)
        raise httpx.ConnectError("connection refused", request=request)

    with _client(refuse, max_retries=2) as client, pytest.raises(EmbeddingServiceUnavailable, match="cannot reach"):
        client.embed_documents(["f"])
    assert len(attempts) == 3


def test_wrong_vector_count_is_an_error() -> None:
    def short(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            200,
            json={
                "object": "list",
                "data": [{"index": 0, "embedding": [1.0]}],
                "model": "m",
                "usage": {"prompt_tokens": 1, "total_tokens": 1},
            },
        )

    with _client(short) as client, pytest.raises(EmbeddingError, match="returned 1 vectors for 2 texts"):
        client.embed_documents(["a", "b"])


def test_info_and_model_check() -> None:
    with _client(FakeService()) as client:
        info = client.info()
        assert isinstance(info, ServiceInfo) and info.dims == 3 and info.max_items_per_request == 10
        client.check_compatible(
            {"model_id": INFO["model_id"], "dims": 3, "similarity": "cosine", "pooling": "mean", "normalized": True}
        )
        with pytest.raises(ModelMismatchError, match="dims: index has 384, service has 3") as err:
            client.check_compatible({"model_id": INFO["model_id"], "dims": 384})
        assert err.value.actual["dims"] == 3
        with pytest.raises(ModelMismatchError, match="model_id"):
            client.check_compatible({"model_id": "intfloat/e5-small-v2", "dims": 3})
        with pytest.raises(ModelMismatchError, match="records no model_id"):
            client.check_compatible({"similarity": "cosine"})


def test_quantization_is_part_of_the_vector_identity_and_a_mismatch_warns(caplog: pytest.LogCaptureFixture) -> None:
    old = ServiceInfo.model_validate(INFO)  # a service from before backends: torch, full precision
    assert (old.backend, old.quantization, old.vector_model_id) == ("torch", "none", INFO["model_id"])
    int8 = ServiceInfo.model_validate({**INFO, "backend": "onnx", "quantization": "int8"})
    assert int8.vector_model_id == f"{INFO['model_id']}+int8"
    assert vector_model_id("m", "none") == "m"

    def int8_service(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={**INFO, "backend": "onnx", "quantization": "int8"})

    field = {"model_id": INFO["model_id"], "dims": 3}
    with _client(int8_service) as client, caplog.at_level(logging.WARNING, logger="connector.services.embedding"):
        client.check_compatible(field)  # an index from before (no model_quantization): full precision
        assert "model quantization none" in caplog.text and "onnx/int8" in caplog.text
        caplog.clear()
        client.check_compatible({**field, "model_quantization": "int8"})
        assert caplog.text == ""


def test_client_module_imports_neither_torch_nor_ray() -> None:
    import subprocess

    code = (
        "import sys, connector.services.embedding; "
        "bad = [m for m in ('torch', 'ray', 'transformers') if m in sys.modules]; "
        "sys.exit(1 if bad else 0)"
    )
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0
