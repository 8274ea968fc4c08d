"""Clients (sync and async) of the rerank service (``rerank``): ``POST /v1/rerank``, ``GET /info``, ``GET /healthz``.

It talks to the service through :class:`connector.services.http.ServiceHttp` (the embedding client's HTTP layer:
same errors, retries and ``timeout_s``). No torch, no ray. What the search path does with the scores (top k, the
fused-order fallback, the score cache) lives in :mod:`connector.search.rerank`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import httpx
from pydantic import SecretStr, ValidationError

from connector.errors import (
    RerankError,
    RerankOverloaded,
    RerankRequestError,
    RerankServiceUnavailable,
    RerankTimeout,
)
from connector.services.http import AsyncServiceHttp, ServiceErrors, ServiceHttp
from connector.services.wire import RerankServiceInfo

__all__ = ["AsyncRerankClient", "RerankClient", "RerankResult", "RerankReply", "RerankServiceInfo"]

_ERRORS = ServiceErrors(
    service="rerank service",
    unavailable=RerankServiceUnavailable,
    overloaded=RerankOverloaded,
    rejected=RerankRequestError,
    timeout=RerankTimeout,
)


@dataclass(frozen=True)
class RerankResult:
    """One result of ``POST /v1/rerank``."""

    index: int
    relevance_score: float


@dataclass(frozen=True)
class RerankReply:
    """The service's answer: results sorted by score, the model, the tokens used."""

    results: list[RerankResult]
    model: str
    total_tokens: int


class _RerankClientBase:
    """The options both rerank clients take, one constructor (the HTTP layer is the subclass's ``_http_class``)."""

    _http_class: type[ServiceHttp] | type[AsyncServiceHttp]

    def __init__(
        self,
        base_url: str,
        *,
        api_key: str | SecretStr | None = None,
        timeout_s: float = 10.0,
        max_retries: int = 0,
        max_backoff_s: float = 2.0,
        transport: httpx.BaseTransport | httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._http: Any = self._http_class(
            base_url,
            errors=_ERRORS,
            api_key=api_key,
            timeout_s=timeout_s,
            max_retries=max_retries,
            initial_backoff_s=0.05,
            max_backoff_s=max_backoff_s,
            transport=transport,
        )
        self.base_url: str = self._http.base_url
        self.timeout_s = timeout_s
        self.max_retries = max_retries
        self._info: RerankServiceInfo | None = None
        self._model_id: str | None = None


class RerankClient(_RerankClientBase):
    """Client of one rerank service; its ``score`` fits ``connector.search.rerank.SupportsScore``.

    Args:
        base_url: the app's URL, route prefix included (``http://host:8000/rerank``).
        api_key: bearer token, when the service requires one.
        timeout_s: time of one HTTP request (each try), as for the embedding client; a call's own
            ``timeout_s`` (the search path's budget) can cut it.
        max_retries: retries of connection errors, timeouts, 429 and 502/503/504 (jittered backoff).
            0 suits the search path, where the fused order is the fallback.
        max_backoff_s: cap of the backoff between retries (a ``Retry-After`` from the service wins).
        transport: an httpx transport (tests only).

    Raises:
        ConfigError: the URL has no http(s) scheme, or ``timeout_s``/``max_retries`` are out of range.
    """

    _http_class = ServiceHttp

    def __repr__(self) -> str:
        return f"RerankClient({self.base_url!r})"

    def __enter__(self) -> RerankClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the connections."""
        self._http.close()

    @property
    def model_id(self) -> str:
        """The served model (from the last answer, else ``GET /info``)."""
        if self._model_id is None:
            self._model_id = self.info().model_id
        return self._model_id

    def info(self, *, refresh: bool = False) -> RerankServiceInfo:
        """``GET /info``: the model, its kind, ``max_length``, the request limits (fetched once, then cached).

        Raises:
            RerankServiceUnavailable: the answer is not a rerank service's ``/info``.
        """
        if self._info is None or refresh:
            self._info = _service_info(self._http.call("GET", "/info"), self.base_url)
        return self._info

    def healthy(self, *, timeout_s: float | None = None) -> bool:
        """Whether ``GET /healthz`` answers ok (within ``timeout_s``, default the client's)."""
        try:
            body = self._http.call("GET", "/healthz", budget_s=timeout_s)
        except RerankError:
            return False
        return _is_ok(body)

    def rerank(
        self, query: str, documents: Sequence[str], *, top_n: int | None = None, timeout_s: float | None = None
    ) -> RerankReply:
        """Results sorted by score (highest first), at most ``top_n``.

        Args:
            timeout_s: the budget of this call, retries included: each try waits at most what is left of it
                (and at most the client's ``timeout_s``). None: the client's retries bound the call.

        Raises:
            RerankTimeout: no answer within the time.
            RerankServiceUnavailable: connection failed, 5xx, or a malformed answer.
            RerankOverloaded: 429 (after the retries, if any).
            RerankRequestError: other 4xx (``status``, ``param``).
        """
        data = self._http.call("POST", "/v1/rerank", json=_request_body(query, documents, top_n), budget_s=timeout_s)
        reply = _reply_of(data, len(documents), top_n, self.base_url)
        self._model_id = reply.model
        return reply

    def score(self, query: str, documents: Sequence[str], *, timeout_s: float | None = None) -> list[float]:
        """One score per document, in input order (same arguments and errors as :meth:`rerank`)."""
        if not documents:
            return []
        return _scores_in_order(self.rerank(query, documents, timeout_s=timeout_s), len(documents))


class AsyncRerankClient(_RerankClientBase):
    """:class:`RerankClient` for async code: ``await score(query, docs, timeout_s=...)`` on ``httpx.AsyncClient``.

    The same options, requests, answer checks and errors as the sync client (shared, not copied).
    """

    _http_class = AsyncServiceHttp

    @property
    def model_id(self) -> str | None:
        """The served model, from the last answer (or :meth:`info`); ``None`` before either."""
        return self._model_id

    def __repr__(self) -> str:
        return f"AsyncRerankClient({self.base_url!r})"

    async def __aenter__(self) -> AsyncRerankClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the connections."""
        await self._http.close()

    async def info(self, *, refresh: bool = False) -> RerankServiceInfo:
        """``GET /info`` (fetched once, then cached; errors as :meth:`RerankClient.info`)."""
        if self._info is None or refresh:
            self._info = _service_info(await self._http.call("GET", "/info"), self.base_url)
            self._model_id = self._model_id or self._info.model_id
        return self._info

    async def healthy(self, *, timeout_s: float | None = None) -> bool:
        """Whether ``GET /healthz`` answers ok (within ``timeout_s``, default the client's)."""
        try:
            body = await self._http.call("GET", "/healthz", budget_s=timeout_s)
        except RerankError:
            return False
        return _is_ok(body)

    async def rerank(
        self, query: str, documents: Sequence[str], *, top_n: int | None = None, timeout_s: float | None = None
    ) -> RerankReply:
        """:meth:`RerankClient.rerank`, awaited (same arguments, answer checks and errors)."""
        body = _request_body(query, documents, top_n)
        data = await self._http.call("POST", "/v1/rerank", json=body, budget_s=timeout_s)
        reply = _reply_of(data, len(documents), top_n, self.base_url)
        self._model_id = reply.model
        return reply

    async def score(self, query: str, documents: Sequence[str], *, timeout_s: float | None = None) -> list[float]:
        """One score per document, in input order (same arguments and errors as :meth:`rerank`)."""
        if not documents:
            return []
        return _scores_in_order(await self.rerank(query, documents, timeout_s=timeout_s), len(documents))


# ----- what the sync and async clients share (no I/O) -----


def _service_info(body: Any, base_url: str) -> RerankServiceInfo:
    try:
        return RerankServiceInfo.model_validate(body)
    except ValidationError as e:
        raise RerankServiceUnavailable(
            f"{base_url}/info did not answer as a rerank service: {e}", url=base_url + "/info"
        ) from e


def _is_ok(body: Any) -> bool:
    return isinstance(body, dict) and body.get("status") == "ok"


def _request_body(query: str, documents: Sequence[str], top_n: int | None) -> dict[str, Any]:
    body: dict[str, Any] = {"query": query, "documents": list(documents)}
    if top_n is not None:
        body["top_n"] = top_n
    return body


def _reply_of(data: Any, count: int, top_n: int | None, base_url: str) -> RerankReply:
    """The checked :class:`RerankReply` of a ``/v1/rerank`` answer for ``count`` documents."""
    try:
        results = [RerankResult(int(r["index"]), float(r["relevance_score"])) for r in data["results"]]
        reply = RerankReply(results, str(data["model"]), int((data.get("usage") or {}).get("total_tokens", 0)))
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise RerankServiceUnavailable(f"malformed rerank answer: {e}", url=base_url) from e
    expected = count if top_n is None else min(top_n, count)
    indices = {r.index for r in results}
    if len(results) != expected or len(indices) != expected or not indices <= set(range(count)):
        raise RerankServiceUnavailable(
            f"the rerank service answered {len(results)} results for {count} documents", url=base_url
        )
    return reply


def _scores_in_order(reply: RerankReply, count: int) -> list[float]:
    scores = [0.0] * count
    for result in reply.results:
        scores[result.index] = result.relevance_score
    return scores
