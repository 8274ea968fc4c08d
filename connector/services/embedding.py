"""Clients of the embedding service (``embedding_service``), used by backfill and search: sync and async.

Requests of ``batch_size`` texts sent ``max_concurrency`` at a time over the services' one HTTP layer
(:class:`connector.services.http.ServiceHttp`: typed errors, tenacity retries with jitter on connection errors,
timeouts, 429 and 502/503/504, a ``Retry-After`` from the service honoured), an LRU cache for query vectors,
and a check that the service's model matches the index ``_meta``. No torch, no ray.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import threading
from array import array
from collections import OrderedDict
from collections.abc import Hashable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, Literal

import httpx
import numpy as np
from pydantic import SecretStr, ValidationError

from connector.errors import (
    ConfigError,
    EmbeddingError,
    EmbeddingOverloaded,
    EmbeddingRequestError,
    EmbeddingServiceUnavailable,
    ModelMismatchError,
)
from connector.observe.metrics import default_search_metrics
from connector.services.http import AsyncServiceHttp, ServiceErrors, ServiceHttp
from connector.services.wire import EmbeddingServiceInfo

if TYPE_CHECKING:
    from connector.cluster.settings import ConnectionSettings

__all__ = ["AsyncEmbeddingClient", "EmbeddingClient", "InputType", "QueryVectorCache", "ServiceInfo"]

logger = logging.getLogger(__name__)

InputType = Literal["query", "document"]

# ``GET /info`` of the embedding service (the contract both sides import from ``connector.services.wire``).
ServiceInfo = EmbeddingServiceInfo

_ERRORS = ServiceErrors(
    service="embedding service",
    unavailable=EmbeddingServiceUnavailable,
    overloaded=EmbeddingOverloaded,
    rejected=EmbeddingRequestError,
    timeout=EmbeddingServiceUnavailable,
)


class QueryVectorCache:
    """The one thread-safe LRU of query vectors (the embedding clients' and the search's own, issue 29's memory work).

    A vector is kept as an ``array("d")`` (8 bytes a value, the same floats): a tuple of Python floats took 32 bytes
    a value, ~12 KB per 384-dim vector, so a full cache of 1,024 held ~12 MB instead of ~3 MB. Every lookup of a
    cache of size > 0 counts as a hit or a miss in ``eshybrid_query_vector_cache_requests_total`` (a no-op without
    prometheus-client).
    """

    def __init__(self, size: int) -> None:
        self.size = size
        self._items: OrderedDict[Hashable, array[float]] = OrderedDict()
        self._lock = threading.Lock()  # the search endpoint calls one client from several threads

    def __len__(self) -> int:
        return len(self._items)

    def get(self, key: Hashable) -> array[float] | None:
        """The vector kept under ``key`` (the cache's own array: copy it before handing it out), or None."""
        with self._lock:
            value = self._items.get(key)
            if value is not None:
                self._items.move_to_end(key)
        if self.size > 0:
            default_search_metrics().record_cache(hit=value is not None)
        return value

    def put(self, key: Hashable, value: Sequence[float]) -> array[float]:
        """Keep ``value`` under ``key`` (as an ``array("d")``, which is returned); a size of 0 keeps nothing."""
        vector = value if isinstance(value, array) else array("d", value)
        if self.size <= 0:
            return vector
        with self._lock:
            self._items[key] = vector
            self._items.move_to_end(key)
            while len(self._items) > self.size:
                self._items.popitem(last=False)
        return vector


class _EmbeddingClientBase:
    """The options both embedding clients take, one constructor (the HTTP layer is the subclass's ``_http_class``)."""

    _http_class: type[ServiceHttp] | type[AsyncServiceHttp]

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
        transport: httpx.BaseTransport | httpx.AsyncBaseTransport | None = None,
    ) -> None:
        if batch_size < 1 or max_retries < 0 or max_concurrency < 1 or timeout_s <= 0:
            raise ConfigError(
                "batch_size, max_concurrency and timeout_s must be positive; max_retries >= 0",
                batch_size=batch_size,
                max_retries=max_retries,
                max_concurrency=max_concurrency,
            )
        self._http: Any = self._http_class(
            base_url,
            errors=_ERRORS,
            api_key=api_key,
            timeout_s=timeout_s,
            max_retries=max_retries,
            initial_backoff_s=0.25,
            max_backoff_s=max_backoff_s,
            max_connections=max_concurrency + 2,
            transport=transport,
        )
        self.base_url: str = self._http.base_url
        self.batch_size = batch_size
        self.max_retries = max_retries
        self.max_concurrency = max_concurrency
        self._cache = QueryVectorCache(query_cache_size)
        self._info: ServiceInfo | None = None
        self._init_driver()

    def _init_driver(self) -> None:
        """What one client (sync or async) keeps beside the shared state."""


class EmbeddingClient(_EmbeddingClientBase):
    """Client of one embedding service (base URL = the app's route prefix, e.g. ``http://h:8000/embed``).

    Args:
        base_url: the service's base URL.
        api_key: bearer token when the service requires one.
        timeout_s: time of one HTTP request (each try), in seconds; retries come on top.
        max_retries: retries after the first try (connection errors, timeouts, 429, 502/503/504).
        batch_size: texts per request.
        query_cache_size: query vectors kept in the LRU cache (0 disables it).
        max_concurrency: requests in flight at once for one ``embed_documents`` call (one per replica
            keeps a multi-replica service busy).
        max_backoff_s: cap of the exponential backoff (``Retry-After`` from the service wins).
        transport: an httpx transport (tests only).

    Raises:
        ConfigError: a number is out of range, or the URL has no http(s) scheme.
    """

    _http_class = ServiceHttp

    def _init_driver(self) -> None:
        self._pool: ThreadPoolExecutor | None = None
        self._pool_lock = threading.Lock()

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
        """The service's model description (fetched once, then cached unless ``refresh``).

        Raises:
            EmbeddingError: the answer is not an embedding service's ``/info`` (fields it does not know are fine).
        """
        if self._info is None or refresh:
            self._info = _service_info(self._http.call("GET", "/info"))
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

    def tokenize(self, texts: Sequence[str]) -> list[tuple[int, list[tuple[int, int]]]]:
        """Per document text: the tokens the model reads untruncated (document prefix and special tokens
        included) and the character spans of the text's own tokens (``POST /v1/tokenize``); for cutting passages.

        Raises:
            EmbeddingRequestError / EmbeddingServiceUnavailable: as :meth:`embed_documents`.
            EmbeddingError: the answer does not have one item per text.
        """
        out: list[tuple[int, list[tuple[int, int]]]] = []
        step = self.info().max_items_per_request
        for first in range(0, len(texts), step):
            chunk = list(texts[first : first + step])
            answer = self._http.call("POST", "/v1/tokenize", json={"input": chunk, "input_type": "document"})
            data = answer.get("data") if isinstance(answer, dict) else None
            if not isinstance(data, list) or len(data) != len(chunk):
                raise EmbeddingError(f"/v1/tokenize returned {type(data).__name__} for {len(chunk)} texts")
            for item in sorted(data, key=lambda d: int(d["index"])):
                out.append((int(item["tokens"]), [(int(a), int(b)) for a, b in item["offsets"]]))
        return out

    def embed_query(self, text: str) -> list[float]:
        """Embed one query (with the model's query prefix); repeated queries come from the LRU cache."""
        key = ("query", text)
        cached = self._cache.get(key)
        if cached is None:
            cached = self._cache.put(key, self.embed([text], input_type="query")[0])
        return list(cached)

    def embed(self, texts: Sequence[str], *, input_type: InputType = "document") -> list[list[float]]:
        """Embed ``texts`` in requests of ``batch_size``; output length always equals input length."""
        chunks = _chunks(texts, self.batch_size)
        if len(chunks) <= 1 or self.max_concurrency == 1:
            results = [self._embed_chunk(chunk, input_type) for chunk in chunks]
        else:
            results = list(self._executor().map(lambda c: self._embed_chunk(c, input_type), chunks))
        return _joined(results, sum(len(c) for c in chunks))

    def embed_images(self, images: Sequence[Mapping[str, str]]) -> list[list[float]]:
        """Embed images through an image service's image tower; one vector per image, in order.

        Args:
            images: each ``{"url": ...}``, ``{"data": <base64 of the file>}`` or ``{"path": <file the service
                may read>}`` (the image service's request shape, ``embedding_service.images``).

        Raises:
            EmbeddingRequestError: the service refused a request (an image it cannot fetch or decode: ``param``
                names it, e.g. ``input[3].image.url``); as :meth:`embed` otherwise.
        """
        items: list[Any] = [{"image": dict(image)} for image in images]
        chunks = [items[i : i + self.batch_size] for i in range(0, len(items), self.batch_size)]
        if len(chunks) <= 1 or self.max_concurrency == 1:
            results = [self._embed_chunk(chunk, "document") for chunk in chunks]
        else:
            results = list(self._executor().map(lambda c: self._embed_chunk(c, "document"), chunks))
        return _joined(results, len(items))

    def check_compatible(self, index_meta_vector_field: Mapping[str, Any]) -> None:
        """Check that this service produces the vectors an index field was built with.

        Args:
            index_meta_vector_field: ``_meta.eshybrid.vector_fields.<field>`` of the index.

        Raises:
            ModelMismatchError: model id, dims, pooling or normalization differ (or the _meta
                records no model/dims), with ``expected`` and ``actual`` attributes. A different
                ``model_quantization`` (absent = none) is logged as a WARNING, not raised: the vectors are close.
        """
        _check_compatible(self.info(), index_meta_vector_field, self.base_url)

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

    def _embed_chunk(self, texts: list[Any], input_type: InputType) -> list[list[float]]:
        # ``texts``: strings, or the image service's {"image": {...}} items.
        answer = self._http.call("POST", "/v1/embeddings", json=_request_body(texts, input_type))
        return _vectors_of(answer, len(texts))


class AsyncEmbeddingClient(_EmbeddingClientBase):
    """:class:`EmbeddingClient` for async code: ``await embed_query(text)``, on one ``httpx.AsyncClient``.

    The same options, requests, answers, query cache and errors as the sync client (what they build
    and check is shared); the chunks of one :meth:`embed` call go ``max_concurrency`` at a time.

    :meth:`check_compatible` is sync and does no I/O: it checks against the ``/info`` fetched before,
    and when none was fetched yet the check runs at the next :meth:`embed_query` (the first query, as
    the search does it), after fetching ``/info``. :meth:`acheck_compatible` checks at once.
    """

    caches_query_vectors = True  # the search keeps no second cache of these vectors

    _http_class = AsyncServiceHttp

    def _init_driver(self) -> None:
        self._pending_check: dict[str, Any] | None = None

    def __repr__(self) -> str:
        return f"AsyncEmbeddingClient({self.base_url!r})"

    async def info(self, *, refresh: bool = False) -> ServiceInfo:
        """The service's model description (fetched once, then cached unless ``refresh``)."""
        if self._info is None or refresh:
            self._info = _service_info(await self._http.call("GET", "/info"))
        return self._info

    async def embed_query(self, text: str) -> list[float]:
        """Embed one query (with the model's query prefix); repeated queries come from the LRU cache.

        Raises:
            ModelMismatchError: a :meth:`check_compatible` left pending failed (see the class docstring).
            EmbeddingError: as :meth:`EmbeddingClient.embed_query`.
        """
        if self._pending_check is not None:
            meta, self._pending_check = self._pending_check, None
            await self.acheck_compatible(meta)
        key = ("query", text)
        cached = self._cache.get(key)
        if cached is None:
            cached = self._cache.put(key, (await self.embed([text], input_type="query"))[0])
        return list(cached)

    async def embed_documents(self, texts: Sequence[str]) -> list[list[float]]:
        """Embed documents; one vector per text, in order (errors as :meth:`EmbeddingClient.embed_documents`)."""
        return await self.embed(texts, input_type="document")

    async def embed(self, texts: Sequence[str], *, input_type: InputType = "document") -> list[list[float]]:
        """Embed ``texts`` in requests of ``batch_size``, ``max_concurrency`` in flight; one vector per text."""
        chunks = _chunks(texts, self.batch_size)
        slots = asyncio.Semaphore(self.max_concurrency)

        async def one(chunk: list[str]) -> list[list[float]]:
            async with slots:
                answer = await self._http.call("POST", "/v1/embeddings", json=_request_body(chunk, input_type))
                return _vectors_of(answer, len(chunk))

        results = await asyncio.gather(*(one(chunk) for chunk in chunks))
        return _joined(results, sum(len(c) for c in chunks))

    def check_compatible(self, index_meta_vector_field: Mapping[str, Any]) -> None:
        """:meth:`EmbeddingClient.check_compatible` without I/O: now if ``/info`` is known, else at the next query.

        Raises:
            ModelMismatchError: as the sync client's (here, or from the next :meth:`embed_query`).
        """
        if self._info is None:
            self._pending_check = dict(index_meta_vector_field)
            return
        _check_compatible(self._info, index_meta_vector_field, self.base_url)

    async def acheck_compatible(self, index_meta_vector_field: Mapping[str, Any]) -> None:
        """:meth:`check_compatible`, fetching ``/info`` first when needed."""
        _check_compatible(await self.info(), index_meta_vector_field, self.base_url)

    async def close(self) -> None:
        """Close the connections."""
        await self._http.close()

    async def __aenter__(self) -> AsyncEmbeddingClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


# ----- what the sync and async clients share (no I/O) -----


def _service_info(body: Any) -> ServiceInfo:
    try:
        return ServiceInfo.model_validate(body)
    except ValidationError as e:
        raise EmbeddingError(
            f"unexpected /info body from the embedding service: {e}",
            body=body if isinstance(body, dict) else None,
        ) from e


def _chunks(texts: Sequence[str], batch_size: int) -> list[list[str]]:
    if isinstance(texts, str):
        raise EmbeddingRequestError("texts must be a sequence of strings, not one string", param="input")
    listed = list(texts)
    return [listed[i : i + batch_size] for i in range(0, len(listed), batch_size)]


def _joined(results: Sequence[list[list[float]]], expected: int) -> list[list[float]]:
    vectors = [vector for result in results for vector in result]
    if len(vectors) != expected:
        raise EmbeddingError(
            f"embedding service returned {len(vectors)} vectors for {expected} texts",
            expected=expected,
            got=len(vectors),
        )
    return vectors


def _request_body(texts: list[Any], input_type: InputType) -> dict[str, Any]:
    return {"input": texts, "input_type": input_type, "encoding_format": "base64"}


def _vectors_of(answer: Any, count: int) -> list[list[float]]:
    """The vectors of a ``/v1/embeddings`` answer, in input order (base64 float32 or float lists)."""
    data = answer.get("data") if isinstance(answer, dict) else None
    if not isinstance(data, list) or len(data) != count:
        got = len(data) if isinstance(data, list) else None
        raise EmbeddingError(f"embedding service returned {got} vectors for {count} texts", expected=count, got=got)
    vectors: list[list[float] | None] = [None] * count
    for item in data:
        index, embedding = item.get("index"), item.get("embedding")
        if not isinstance(index, int) or not 0 <= index < count or vectors[index] is not None:
            raise EmbeddingError(f"embedding service returned a bad or repeated index {index!r}", index=index)
        if isinstance(embedding, str):
            vectors[index] = np.frombuffer(base64.b64decode(embedding), dtype="<f4").tolist()
        else:
            vectors[index] = [float(x) for x in embedding]
    return vectors  # type: ignore[return-value]  # every slot was filled above


def _check_compatible(info: ServiceInfo, index_meta_vector_field: Mapping[str, Any], base_url: str) -> None:
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
    wanted = str(meta.get("model_quantization") or "none")
    if not diffs and wanted != info.quantization:
        # Close, not equal: a search still works, but the user should know the variants differ.
        logger.warning(
            "the index field was embedded with model quantization %s, the embedding service at %s runs %s/%s: "
            "vectors are close (cosine ~0.99), not identical; run the service with the index's quantization "
            "or re-embed with a backfill (documents of the other variant are re-embedded)",
            wanted,
            base_url,
            info.backend,
            info.quantization,
        )
    if diffs:
        raise ModelMismatchError(
            f"embedding service at {base_url} does not match the index: "
            + "; ".join(diffs)
            + ". Point the client at a service running the index's model, or reindex with the new one.",
            expected={k: meta[k] for k in actual if k in meta},
            actual=actual,
        )
