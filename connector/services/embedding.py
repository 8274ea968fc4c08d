"""Sync client for the embedding service (``embedding_service``), used by backfill and search.

One ``httpx.Client`` (connections reused), requests of ``batch_size`` texts sent
``max_concurrency`` at a time, tenacity retries with jitter on connection errors, 429 and
502/503/504 (a ``Retry-After`` from the service is honoured), an LRU cache for query vectors,
and a check that the service's model matches the index ``_meta``. No torch, no ray.
"""

from __future__ import annotations

import base64
import logging
import random
import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any, Literal

import httpx
import numpy as np
from pydantic import SecretStr
from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_attempt, wait_random_exponential

from connector.errors import (
    ConfigError,
    EmbeddingError,
    EmbeddingOverloaded,
    EmbeddingRequestError,
    EmbeddingServiceUnavailable,
    ModelMismatchError,
)

if TYPE_CHECKING:
    from connector.cluster.settings import ConnectionSettings

__all__ = ["EmbeddingClient", "ServiceInfo", "InputType"]

logger = logging.getLogger(__name__)

InputType = Literal["query", "document"]

_RETRY_STATUSES = frozenset({502, 503, 504})
_MAX_RETRY_AFTER_S = 60.0


@dataclass(frozen=True)
class ServiceInfo:
    """``GET /info`` of the service: what model produces the vectors, and how."""

    model_id: str
    revision: str
    dims: int
    max_length: int
    pooling: str
    normalized: bool
    device: str
    dtype: str
    query_prefix: str
    document_prefix: str
    max_items_per_request: int | None = None
    max_chars_per_item: int | None = None

    @classmethod
    def from_json(cls, body: Mapping[str, Any]) -> ServiceInfo:
        """Build from the JSON body (unknown keys are ignored, so newer services still work).

        Raises:
            EmbeddingError: a required key is missing.
        """
        known = {f.name for f in fields(cls)}
        try:
            return cls(**{k: v for k, v in body.items() if k in known})
        except TypeError as e:
            raise EmbeddingError(f"unexpected /info body from the embedding service: {e}", body=dict(body)) from e


def _retry_after_s(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After")
    if value is None:
        return None
    try:
        return min(max(float(value), 0.0), _MAX_RETRY_AFTER_S)
    except ValueError:
        return None  # an HTTP date; fall back to our own backoff


def _error_message(response: httpx.Response) -> tuple[str, str | None]:
    try:
        error = response.json().get("error") or {}
        return str(error.get("message") or response.text[:500]), error.get("param")
    except (ValueError, AttributeError):
        return response.text[:500], None


def _raise_for_status(response: httpx.Response) -> None:
    status = response.status_code
    if status < 400:
        return
    message, param = _error_message(response)
    where = f"{response.request.method} {response.request.url}"
    if status == 429:
        raise EmbeddingOverloaded(
            f"embedding service overloaded (429) on {where}: {message}",
            status=status,
            retry_after_s=_retry_after_s(response),
        )
    if status >= 500:
        raise EmbeddingServiceUnavailable(
            f"embedding service answered {status} on {where}: {message}",
            status=status,
            retry_after_s=_retry_after_s(response),
            retryable=status in _RETRY_STATUSES,
        )
    raise EmbeddingRequestError(
        f"embedding service rejected the request ({status}) on {where}: {message}", status=status, param=param
    )


def _is_retryable(exc: BaseException) -> bool:
    return isinstance(exc, (EmbeddingOverloaded, EmbeddingServiceUnavailable)) and getattr(exc, "retryable", True)


class _LruCache:
    """A small thread-safe LRU of query text -> vector."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._items: OrderedDict[tuple[str, str], tuple[float, ...]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple[str, str]) -> tuple[float, ...] | None:
        with self._lock:
            value = self._items.get(key)
            if value is not None:
                self._items.move_to_end(key)
            return value

    def put(self, key: tuple[str, str], value: tuple[float, ...]) -> None:
        if self._size <= 0:
            return
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self._size:
                self._items.popitem(last=False)


class EmbeddingClient:
    """Client of one embedding service (base URL = the app's route prefix, e.g. ``http://h:8000/embed``).

    Args:
        base_url: the service's base URL.
        api_key: bearer token when the service requires one.
        timeout_s: per-request timeout.
        max_retries: retries after the first try (connection errors, 429, 502/503/504).
        batch_size: texts per request.
        query_cache_size: query vectors kept in the LRU cache (0 disables it).
        max_concurrency: requests in flight at once for one ``embed_documents`` call (one per replica
            keeps a multi-replica service busy).
        max_backoff_s: cap of the exponential backoff (``Retry-After`` from the service wins).
        transport: an httpx transport (tests only).
    """

    def __init__(
        self,
        base_url: str,
        *,
        api_key: str | SecretStr | None = None,
        timeout_s: float = 30.0,
        max_retries: int = 5,
        batch_size: int = 64,
        query_cache_size: int = 1024,
        max_concurrency: int = 4,
        max_backoff_s: float = 10.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        if batch_size < 1 or max_retries < 0 or max_concurrency < 1 or timeout_s <= 0:
            raise ConfigError(
                "batch_size, max_concurrency and timeout_s must be positive; max_retries >= 0",
                batch_size=batch_size,
                max_retries=max_retries,
                max_concurrency=max_concurrency,
            )
        self.base_url = base_url.rstrip("/")
        self.batch_size = batch_size
        self.max_retries = max_retries
        self.max_concurrency = max_concurrency
        self._max_backoff_s = max_backoff_s
        secret = api_key.get_secret_value() if isinstance(api_key, SecretStr) else api_key
        headers = {"Authorization": f"Bearer {secret}"} if secret else {}
        self._http = httpx.Client(
            base_url=self.base_url,
            headers=headers,
            transport=transport,
            timeout=httpx.Timeout(timeout_s, connect=min(timeout_s, 10.0)),
            limits=httpx.Limits(max_connections=max_concurrency + 2, max_keepalive_connections=max_concurrency + 2),
        )
        self._cache = _LruCache(query_cache_size)
        self._pool: ThreadPoolExecutor | None = None
        self._pool_lock = threading.Lock()
        self._info: ServiceInfo | None = None

    @classmethod
    def from_settings(
        cls,
        settings: ConnectionSettings,
        url: str | None = None,
        *,
        missing: str = "no embedding service",
        **options: Any,
    ) -> EmbeddingClient:
        """A client for ``url`` (or ``ESHYBRID_EMBED_URL``) with ``ESHYBRID_EMBED_API_KEY`` from ``settings``.

        Args:
            settings: the connection settings (``ESHYBRID_*``).
            url: overrides ``settings.embed_url``.
            missing: what the error says is wrong when neither is set (e.g. why the command needs one).
            options: the client's other keyword options (``timeout_s``, ``max_retries``...).

        Raises:
            ConfigError: neither is set.
        """
        chosen = url or settings.embed_url
        if not chosen:
            raise ConfigError(
                f"{missing}: pass --embed-url or set ESHYBRID_EMBED_URL (start one with `eshybrid serve embed`)",
                field="embed_url",
            )
        return cls(chosen, api_key=settings.embed_api_key, **options)

    # ----- public API -----

    def info(self, *, refresh: bool = False) -> ServiceInfo:
        """The service's model description (fetched once, then cached unless ``refresh``)."""
        if self._info is None or refresh:
            self._info = ServiceInfo.from_json(self._request("GET", "/info").json())
        return self._info

    def embed_documents(self, texts: Sequence[str]) -> list[list[float]]:
        """Embed documents (the service adds the model's document prefix); one vector per text, in order.

        Raises:
            EmbeddingRequestError: the service rejected a request (4xx other than 429).
            EmbeddingOverloaded: still 429 after all retries.
            EmbeddingServiceUnavailable: unreachable or 5xx after all retries.
            EmbeddingError: the service answered with the wrong number of vectors.
        """
        return self.embed(texts, input_type="document")

    def embed_query(self, text: str) -> list[float]:
        """Embed one query (with the model's query prefix); repeated queries come from the LRU cache."""
        key = ("query", text)
        cached = self._cache.get(key)
        if cached is None:
            cached = tuple(self.embed([text], input_type="query")[0])
            self._cache.put(key, cached)
        return list(cached)

    def embed(self, texts: Sequence[str], *, input_type: InputType = "document") -> list[list[float]]:
        """Embed ``texts`` in requests of ``batch_size``; output length always equals input length."""
        if isinstance(texts, str):
            raise EmbeddingRequestError("texts must be a sequence of strings, not one string", param="input")
        texts = list(texts)
        if not texts:
            return []
        chunks = [texts[i : i + self.batch_size] for i in range(0, len(texts), self.batch_size)]
        if len(chunks) == 1 or self.max_concurrency == 1:
            results = [self._embed_chunk(chunk, input_type) for chunk in chunks]
        else:
            results = list(self._executor().map(lambda c: self._embed_chunk(c, input_type), chunks))
        vectors = [vector for result in results for vector in result]
        if len(vectors) != len(texts):
            raise EmbeddingError(
                f"embedding service returned {len(vectors)} vectors for {len(texts)} texts",
                expected=len(texts),
                got=len(vectors),
            )
        return vectors

    def check_compatible(self, index_meta_vector_field: Mapping[str, Any]) -> None:
        """Check that this service produces the vectors an index field was built with.

        Args:
            index_meta_vector_field: ``_meta.eshybrid.vector_fields.<field>`` of the index.

        Raises:
            ModelMismatchError: model id, dims, pooling or normalization differ (or the _meta
                records no model/dims), with ``expected`` and ``actual`` attributes.
        """
        info = self.info()
        meta = dict(index_meta_vector_field)
        if "model_id" not in meta or "dims" not in meta:
            raise ModelMismatchError(
                f"the index _meta records no model_id/dims for this field ({meta}); cannot check the service "
                "model; add them with a migration",
                expected=meta,
                actual=info.model_id,
            )
        actual = {"model_id": info.model_id, "dims": info.dims, "pooling": info.pooling, "normalized": info.normalized}
        diffs = [
            f"{key}: index has {meta[key]!r}, service has {actual[key]!r}"
            for key in actual
            if key in meta and meta[key] != actual[key]
        ]
        if diffs:
            raise ModelMismatchError(
                f"embedding service at {self.base_url} does not match the index: "
                + "; ".join(diffs)
                + ". Point the client at a service running the index's model, or reindex with the new one.",
                expected={k: meta[k] for k in actual if k in meta},
                actual=actual,
            )

    def close(self) -> None:
        """Close connections and the worker threads."""
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
        self._http.close()

    def __enter__(self) -> EmbeddingClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ----- internals -----

    def _executor(self) -> ThreadPoolExecutor:
        with self._pool_lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self.max_concurrency, thread_name_prefix="embedding-client")
            return self._pool

    def _embed_chunk(self, texts: list[str], input_type: InputType) -> list[list[float]]:
        body = {"input": texts, "input_type": input_type, "encoding_format": "base64"}
        data = self._request("POST", "/v1/embeddings", json=body).json().get("data")
        if not isinstance(data, list) or len(data) != len(texts):
            got = len(data) if isinstance(data, list) else None
            raise EmbeddingError(
                f"embedding service returned {got} vectors for {len(texts)} texts", expected=len(texts), got=got
            )
        vectors: list[list[float] | None] = [None] * len(texts)
        for item in data:
            index, embedding = item.get("index"), item.get("embedding")
            if not isinstance(index, int) or not 0 <= index < len(texts) or vectors[index] is not None:
                raise EmbeddingError(f"embedding service returned a bad or repeated index {index!r}", index=index)
            if isinstance(embedding, str):
                vectors[index] = np.frombuffer(base64.b64decode(embedding), dtype="<f4").tolist()
            else:
                vectors[index] = [float(x) for x in embedding]
        return vectors  # type: ignore[return-value]  # every slot was filled above

    def _request(self, method: str, path: str, *, json: Any = None) -> httpx.Response:
        retrying = Retrying(
            stop=stop_after_attempt(self.max_retries + 1),
            wait=self._wait,
            retry=retry_if_exception(_is_retryable),
            before_sleep=self._log_retry,
            reraise=True,
        )
        for attempt in retrying:
            with attempt:
                return self._send(method, path, json)
        raise AssertionError("unreachable: tenacity re-raises the last error")

    def _send(self, method: str, path: str, json: Any) -> httpx.Response:
        try:
            response = self._http.request(method, path, json=json)
        except httpx.TransportError as e:  # connect errors, timeouts, dropped connections
            raise EmbeddingServiceUnavailable(
                f"cannot reach the embedding service at {self.base_url}{path}: {type(e).__name__}: {e}",
                url=self.base_url + path,
            ) from e
        _raise_for_status(response)
        return response

    def _wait(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome is not None else None
        retry_after = getattr(exc, "retry_after_s", None)
        if retry_after is not None:
            # The service knows when it will have room; add jitter so clients do not return in lockstep.
            return float(retry_after) + random.uniform(0.0, max(0.1, 0.25 * float(retry_after)))
        return float(wait_random_exponential(multiplier=0.25, max=self._max_backoff_s)(state))

    def _log_retry(self, state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome is not None else None
        sleep = state.next_action.sleep if state.next_action is not None else 0.0
        logger.warning(
            "embedding request failed (%s); retry %s/%s in %.2fs", exc, state.attempt_number, self.max_retries, sleep
        )
