"""The one HTTP layer of our service clients: the same rules for the embedding and the rerank client
(error parsing, typed errors, which answers are retried, Retry-After, timeout_s per request, a call's budget)."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from connector.errors import (
    ConfigError,
    EmbeddingOverloaded,
    EmbeddingRequestError,
    EmbeddingServiceUnavailable,
    EshybridError,
    ModelMismatchError,
    RerankOverloaded,
    RerankRequestError,
    RerankServiceUnavailable,
    RerankTimeout,
)
from connector.services.embedding import AsyncEmbeddingClient, EmbeddingClient
from connector.services.http import MAX_RETRY_AFTER_S, error_fields, retry_after_s
from connector.services.rerank import AsyncRerankClient, RerankClient
from tests.unit.connector.services.test_embedding_client import INFO

Handler = Callable[[httpx.Request], httpx.Response]


def _ok(request: httpx.Request) -> httpx.Response:
    body = json.loads(request.content)
    if request.url.path.endswith("/v1/embeddings"):
        data = [{"index": i, "embedding": [1.0, 2.0]} for i in range(len(body["input"]))]
        return httpx.Response(200, json={"data": data, "model": "m", "usage": {"prompt_tokens": 1, "total_tokens": 1}})
    results = [{"index": i, "relevance_score": float(i)} for i in range(len(body["documents"]))]
    return httpx.Response(200, json={"results": results[::-1], "model": "m", "usage": {"total_tokens": 3}})


@dataclass
class Kind:
    """One client kind: how to build it, how to make one call, and the error classes it raises."""

    name: str
    build: Callable[..., Any]
    call: Callable[[Any], Any]
    unavailable: type[EshybridError]
    overloaded: type[EshybridError]
    rejected: type[EshybridError]
    timeout: type[EshybridError]


KINDS = [
    Kind(
        "embed",
        lambda handler, **options: EmbeddingClient(
            "http://svc/embed", transport=httpx.MockTransport(handler), max_backoff_s=0.05, **options
        ),
        lambda client: client.embed_documents(["a"]),
        EmbeddingServiceUnavailable,
        EmbeddingOverloaded,
        EmbeddingRequestError,
        EmbeddingServiceUnavailable,  # the library has no EmbeddingTimeout: a timeout is "unavailable"
    ),
    Kind(
        "rerank",
        lambda handler, **options: RerankClient(
            "http://svc/rerank", transport=httpx.MockTransport(handler), max_backoff_s=0.05, **options
        ),
        lambda client: client.score("q", ["a"]),
        RerankServiceUnavailable,
        RerankOverloaded,
        RerankRequestError,
        RerankTimeout,
    ),
]


class OnLoop:
    """An async client driven from a sync test: each call runs on the client's own event loop."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.loop = asyncio.new_event_loop()

    def run(self, call: Awaitable[Any]) -> Any:
        return self.loop.run_until_complete(call)

    def __enter__(self) -> OnLoop:
        return self

    def __exit__(self, *exc: object) -> None:
        self.run(self.client.close())
        self.loop.close()


# The async clients follow the same rules and raise the same errors (AsyncServiceHttp shares them).
KINDS += [
    Kind(
        "async-embed",
        lambda handler, **options: OnLoop(
            AsyncEmbeddingClient(
                "http://svc/embed", transport=httpx.MockTransport(handler), max_backoff_s=0.05, **options
            )
        ),
        lambda on: on.run(on.client.embed_documents(["a"])),
        EmbeddingServiceUnavailable,
        EmbeddingOverloaded,
        EmbeddingRequestError,
        EmbeddingServiceUnavailable,
    ),
    Kind(
        "async-rerank",
        lambda handler, **options: OnLoop(
            AsyncRerankClient(
                "http://svc/rerank", transport=httpx.MockTransport(handler), max_backoff_s=0.05, **options
            )
        ),
        lambda on: on.run(on.client.score("q", ["a"])),
        RerankServiceUnavailable,
        RerankOverloaded,
        RerankRequestError,
        RerankTimeout,
    ),
]


@pytest.fixture(params=KINDS, ids=lambda kind: kind.name)
def kind(request: pytest.FixtureRequest) -> Kind:
    return request.param  # type: ignore[no-any-return]


class Scripted:
    """Answers the scripted responses first (a callable raises or answers), then like the real service."""

    def __init__(self, *script: httpx.Response | Callable[[httpx.Request], httpx.Response]) -> None:
        self.script = list(script)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if self.script:
            step = self.script.pop(0)
            return step(request) if callable(step) else step
        return _ok(request)


def _wire_error(status: int, message: str = "scripted", *, param: str | None = None, **headers: str) -> httpx.Response:
    error = {"message": message, "type": "invalid_request_error", "param": param, "code": None}
    return httpx.Response(status, json={"error": error}, headers=headers)


def test_retry_after_is_honoured_by_both_clients(kind: Kind) -> None:
    service = Scripted(_wire_error(429, "queue full", **{"Retry-After": "1"}))
    started = time.monotonic()
    with kind.build(service, max_retries=2) as client:
        kind.call(client)
    assert time.monotonic() - started >= 1.0
    assert len(service.requests) == 2


@pytest.mark.parametrize("status", [502, 503, 504])
def test_gateway_and_unavailable_statuses_are_retried(kind: Kind, status: int) -> None:
    service = Scripted(_wire_error(status), _wire_error(status))
    with kind.build(service, max_retries=2) as client:
        kind.call(client)
    assert len(service.requests) == 3


def test_a_500_is_a_bug_and_not_retried(kind: Kind) -> None:
    service = Scripted(_wire_error(500, "boom"))
    with kind.build(service, max_retries=3) as client, pytest.raises(kind.unavailable, match="boom") as caught:
        kind.call(client)
    assert caught.value.status == 500 and caught.value.retryable is False  # type: ignore[attr-defined]
    assert len(service.requests) == 1


@pytest.mark.parametrize("status", [400, 401, 404, 422])
def test_other_4xx_are_typed_request_errors_with_the_wire_param(kind: Kind, status: int) -> None:
    service = Scripted(_wire_error(status, "bad field", param="input[0]"))
    with kind.build(service, max_retries=3) as client, pytest.raises(kind.rejected, match="bad field") as caught:
        kind.call(client)
    err: Any = caught.value
    assert (err.status, err.param) == (status, "input[0]")
    assert err.url.startswith("http://svc/")
    assert len(service.requests) == 1


def test_overload_that_never_ends(kind: Kind) -> None:
    service = Scripted(*[_wire_error(429, **{"Retry-After": "0"})] * 3)
    with kind.build(service, max_retries=2) as client, pytest.raises(kind.overloaded) as caught:
        kind.call(client)
    assert caught.value.status == 429 and caught.value.retry_after_s == 0.0  # type: ignore[attr-defined]
    assert len(service.requests) == 3


def test_connection_errors_are_retried_then_unavailable(kind: Kind) -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    service = Scripted(refuse, refuse, refuse)
    with kind.build(service, max_retries=2) as client, pytest.raises(kind.unavailable, match="cannot reach"):
        kind.call(client)
    assert len(service.requests) == 3


def test_a_timeout_is_retried_then_raised_as_the_timeout_error(kind: Kind) -> None:
    def slow(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("no answer", request=request)

    service = Scripted(slow, slow)
    with kind.build(service, max_retries=1, timeout_s=7.0) as client, pytest.raises(kind.timeout) as caught:
        kind.call(client)
    assert caught.value.timeout_s == 7.0  # type: ignore[attr-defined]
    assert len(service.requests) == 2


def test_timeout_s_is_the_time_of_one_request(kind: Kind) -> None:
    service = Scripted(_wire_error(503))
    with kind.build(service, max_retries=1, timeout_s=4.0) as client:
        kind.call(client)
    for request in service.requests:  # every try gets the whole timeout, retries come on top
        assert request.extensions["timeout"]["read"] == 4.0
        assert request.extensions["timeout"]["connect"] == 4.0


def test_an_answer_that_is_no_json_is_unavailable(kind: Kind) -> None:
    service = Scripted(httpx.Response(200, text="<html>proxy</html>"))
    with kind.build(service, max_retries=2) as client, pytest.raises(kind.unavailable, match="no JSON"):
        kind.call(client)
    assert len(service.requests) == 1


def test_an_error_body_that_is_not_ours_keeps_its_text(kind: Kind) -> None:
    service = Scripted(httpx.Response(404, text="no such route"))
    with kind.build(service) as client, pytest.raises(kind.rejected, match="no such route") as caught:
        kind.call(client)
    assert caught.value.param is None  # type: ignore[attr-defined]


def test_bearer_token_on_every_request(kind: Kind) -> None:
    service = Scripted(_wire_error(503))
    with kind.build(service, max_retries=1, api_key="s3cret") as client:
        kind.call(client)
    assert [r.headers["authorization"] for r in service.requests] == ["Bearer s3cret"] * 2


def test_retries_log_a_warning_with_the_reason(kind: Kind, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="connector.services.http"):
        with kind.build(Scripted(_wire_error(503, "restarting")), max_retries=1) as client:
            kind.call(client)
    assert "restarting" in caplog.text and "retry 1/1" in caplog.text


@pytest.mark.parametrize("client_class", [EmbeddingClient, RerankClient])
def test_urls_without_a_scheme_are_refused(client_class: type[Any]) -> None:
    with pytest.raises(ConfigError, match="http://"):
        client_class("localhost:8000")


def test_a_call_budget_caps_retries_and_each_try() -> None:
    # The search path's rerank budget: no retry starts after it, and a try waits at most what is left of it.
    service = Scripted(_wire_error(503, **{"Retry-After": "1"}))
    with RerankClient("http://svc/rerank", transport=httpx.MockTransport(service), max_retries=3) as client:
        started = time.monotonic()
        with pytest.raises(RerankServiceUnavailable):
            client.score("q", ["a"], timeout_s=0.5)
        assert time.monotonic() - started < 0.5
        assert len(service.requests) == 1
        assert service.requests[0].extensions["timeout"]["read"] <= 0.5
        assert client.score("q", ["a", "b"], timeout_s=5.0) == [0.0, 1.0]


def test_retry_after_parsing() -> None:
    def answer(value: str | None) -> httpx.Response:
        return httpx.Response(429, headers={} if value is None else {"Retry-After": value})

    assert retry_after_s(answer("2")) == 2.0
    assert retry_after_s(answer("0.5")) == 0.5
    assert retry_after_s(answer("-3")) == 0.0
    assert retry_after_s(answer("86400")) == MAX_RETRY_AFTER_S
    assert retry_after_s(answer("Wed, 21 Oct 2015 07:28:00 GMT")) is None
    assert retry_after_s(answer(None)) is None


def test_error_fields_read_the_wire_body_leniently() -> None:
    assert error_fields(_wire_error(422, "too long", param="documents[3]")) == ("too long", "documents[3]")
    assert error_fields(httpx.Response(422, json={"error": {"message": "m", "param": "p"}})) == ("m", "p")
    assert error_fields(httpx.Response(502, text="bad gateway")) == ("bad gateway", None)
    not_ours = httpx.Response(502, json={"detail": "x"})
    assert error_fields(not_ours) == (not_ours.text, None)
    assert error_fields(httpx.Response(503)) == ("Service Unavailable", None)


def test_the_async_clients_answer_as_the_sync_ones() -> None:
    """Same vectors (base64 decoded), same cached query, same rerank order; check_compatible needs /info first."""

    def service(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/info"):
            return httpx.Response(200, json={**INFO, "model_id": "m", "dims": 2})
        return _ok(request)

    sync_embed = EmbeddingClient("http://svc/embed", transport=httpx.MockTransport(service), batch_size=2)
    with OnLoop(AsyncEmbeddingClient("http://svc/embed", transport=httpx.MockTransport(service), batch_size=2)) as on:
        texts = ["a", "b", "c", "d", "e"]
        assert on.run(on.client.embed_documents(texts)) == sync_embed.embed_documents(texts)
        assert on.run(on.client.embed_query("q")) == sync_embed.embed_query("q") == [1.0, 2.0]
    with OnLoop(AsyncEmbeddingClient("http://svc/embed", transport=httpx.MockTransport(service))) as on:
        on.client.check_compatible({"model_id": "other", "dims": 2})  # no /info yet: checked at the next query
        with pytest.raises(ModelMismatchError):
            on.run(on.client.embed_query("q"))
        on.run(on.client.acheck_compatible({"model_id": "m", "dims": 2}))
        on.client.check_compatible({"model_id": "m", "dims": 2})  # /info known: checked at once
        with pytest.raises(ModelMismatchError):
            on.client.check_compatible({"model_id": "m", "dims": 3})
    sync_embed.close()
    with OnLoop(AsyncRerankClient("http://svc/rerank", transport=httpx.MockTransport(_ok))) as on:
        assert on.run(on.client.score("q", ["x", "y", "z"])) == [0.0, 1.0, 2.0]
        assert on.run(on.client.score("q", [])) == []
