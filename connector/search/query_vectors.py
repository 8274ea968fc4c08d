"""Query text -> vector on the search path, with exactly one cache of query vectors.

An :class:`~connector.services.embedding.EmbeddingClient` caches query vectors itself
(its ``query_cache_size``); the search must not cache them a second time. Any other
embedder (the ``/search`` app's Ray handle, an in-process model, a test double) gets
an LRU here (the same :class:`~connector.services.embedding.QueryVectorCache`), sized by ``HybridSearch(query_cache_size=...)``. So whichever embedder a
search has, a repeated query is embedded once and cached once.

When the embedder is a client of our embedding service and an export of the index's model is on this machine
(``eshybrid export-query-encoder``, or the service's own onnx export cache), the query is embedded in process by
:class:`~connector.services.query_encoder.QueryEncoder` instead: the same graph and tokenizer, a few milliseconds
instead of an HTTP round trip through the service (issue 24). The choice is made once, on the first query, against
the vector field's ``_meta``; ``ESHYBRID_QUERY_ENCODER_ENABLED=false`` keeps every query on the service.
"""

from __future__ import annotations

import asyncio
import inspect
import threading
from collections.abc import Mapping
from typing import Any, Protocol, runtime_checkable

from connector.services.embedding import AsyncEmbeddingClient, EmbeddingClient, QueryVectorCache
from connector.services.query_encoder import local_query_encoder

__all__ = ["Embedder", "QueryVectors"]


@runtime_checkable
class Embedder(Protocol):
    """Anything that turns a query into a vector (``EmbeddingClient`` is one)."""

    def embed_query(self, text: str) -> list[float]: ...


class QueryVectors:
    """The query vectors of one search object: embedded once, cached once, model checked once.

    Args:
        embedder: turns a query into a vector.
        cache_size: query vectors kept here when the embedder has no cache of its own (0: none).
            Ignored for an ``EmbeddingClient`` (or any embedder with ``caches_query_vectors = True``),
            whose own cache governs.
        check_model: compare the embedder's model with the index ``_meta`` before the first
            query (when the embedder has ``check_compatible`` and the index records a model).
        prefer_local: embed in process when the embedder is a service client and an export of the
            index's model is found (the module docstring); ``False`` always asks ``embedder``.
    """

    def __init__(
        self, embedder: Embedder, *, cache_size: int, check_model: bool = True, prefer_local: bool = True
    ) -> None:
        self.embedder = embedder
        self.cache_size = cache_size
        self.cache: QueryVectorCache | None = None
        if cache_size > 0 and not _caches_itself(embedder):
            self.cache = QueryVectorCache(cache_size)
        self._check_model = check_model
        self._choose_local = prefer_local and isinstance(embedder, EmbeddingClient | AsyncEmbeddingClient)
        self._choice_lock = threading.Lock()

    @property
    def local(self) -> bool:
        """Whether queries are embedded in process (decided on the first query)."""
        return not isinstance(self.embedder, EmbeddingClient | AsyncEmbeddingClient) and self._choose_local

    @property
    def cached(self) -> int:
        """Vectors held by this object's own cache (0 when the embedder caches, or no cache)."""
        return len(self.cache) if self.cache is not None else 0

    def vector(self, text: str, *, vector_meta: Mapping[str, Any] | None = None) -> list[float]:
        """The vector of ``text`` (from a cache when seen before).

        Raises:
            ModelMismatchError: (first call) the embedder's model is not the index's.
            EmbeddingError: the embedder failed.
        """
        vector = self._cached(text, vector_meta)
        if vector is None:
            vector = self._store(text, self.embedder.embed_query(text))
        return vector

    async def avector(self, text: str, *, vector_meta: Mapping[str, Any] | None = None) -> list[float]:
        """:meth:`vector` for async code: awaits an async ``embed_query``; runs a sync one in a thread."""
        vector = self._cached(text, vector_meta)
        if vector is None:
            embed = self.embedder.embed_query
            if inspect.iscoroutinefunction(embed):
                raw = await embed(text)
            else:
                raw = await asyncio.to_thread(embed, text)
            vector = self._store(text, raw)
        return vector

    def _cached(self, text: str, vector_meta: Mapping[str, Any] | None) -> list[float] | None:
        if self._choose_local and isinstance(self.embedder, EmbeddingClient | AsyncEmbeddingClient):
            self._use_local_encoder(vector_meta)
        if self._check_model:
            check = getattr(self.embedder, "check_compatible", None)
            if callable(check) and vector_meta:
                check(vector_meta)
            self._check_model = False
        cached = self.cache.get(text) if self.cache is not None else None
        return None if cached is None else list(cached)

    def _use_local_encoder(self, vector_meta: Mapping[str, Any] | None) -> None:
        """Swap the service client for an in-process encoder of the same model, once, when one is found."""
        with self._choice_lock:
            if not isinstance(self.embedder, EmbeddingClient | AsyncEmbeddingClient):
                return  # another thread chose already
            encoder = local_query_encoder(vector_meta) if vector_meta else None
            if encoder is None:
                self._choose_local = False
                return
            self.embedder = encoder  # the service client stays the caller's (closed by the search's close)
            if self.cache is None and self.cache_size > 0:
                self.cache = QueryVectorCache(self.cache_size)  # the encoder keeps no cache of its own

    def _store(self, text: str, raw: Any) -> list[float]:
        vector = [float(v) for v in raw]
        if self.cache is not None:
            self.cache.put(text, vector)
        return vector


def _caches_itself(embedder: Any) -> bool:
    """An ``EmbeddingClient`` (or an embedder saying ``caches_query_vectors = True``) has its own cache."""
    return isinstance(embedder, EmbeddingClient) or bool(getattr(embedder, "caches_query_vectors", False))
