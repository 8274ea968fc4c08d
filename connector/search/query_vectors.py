"""Query text -> vector on the search path, with exactly one cache of query vectors.

An :class:`~connector.services.embedding.EmbeddingClient` caches query vectors itself
(its ``query_cache_size``); the search must not cache them a second time. Any other
embedder (the ``/search`` app's Ray handle, an in-process model, a test double) gets
an LRU here, sized by ``HybridSearch(query_cache_size=...)``. So whichever embedder a
search has, a repeated query is embedded once and cached once.
"""

from __future__ import annotations

import asyncio
import inspect
import threading
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any, Protocol, runtime_checkable

from connector.services.embedding import EmbeddingClient

__all__ = ["Embedder", "QueryVectors"]


@runtime_checkable
class Embedder(Protocol):
    """Anything that turns a query into a vector (``EmbeddingClient`` is one)."""

    def embed_query(self, text: str) -> list[float]: ...


class _LRU:
    """A tiny thread-safe LRU of query text -> vector."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._items: OrderedDict[str, list[float]] = OrderedDict()
        self._lock = threading.Lock()  # the search endpoint calls one HybridSearch from several threads

    def __len__(self) -> int:
        return len(self._items)

    def get(self, key: str) -> list[float] | None:
        with self._lock:
            value = self._items.get(key)
            if value is not None:
                self._items.move_to_end(key)
            return value

    def put(self, key: str, value: list[float]) -> None:
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self.size:
                self._items.popitem(last=False)


class QueryVectors:
    """The query vectors of one search object: embedded once, cached once, model checked once.

    Args:
        embedder: turns a query into a vector.
        cache_size: query vectors kept here when the embedder has no cache of its own (0: none).
            Ignored for an ``EmbeddingClient`` (or any embedder with ``caches_query_vectors = True``),
            whose own cache governs.
        check_model: compare the embedder's model with the index ``_meta`` before the first
            query (when the embedder has ``check_compatible`` and the index records a model).
    """

    def __init__(self, embedder: Embedder, *, cache_size: int, check_model: bool = True) -> None:
        self.embedder = embedder
        self.cache: _LRU | None = None
        if cache_size > 0 and not _caches_itself(embedder):
            self.cache = _LRU(cache_size)
        self._check_model = check_model

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
        if self._check_model:
            check = getattr(self.embedder, "check_compatible", None)
            if callable(check) and vector_meta:
                check(vector_meta)
            self._check_model = False
        return self.cache.get(text) if self.cache is not None else None

    def _store(self, text: str, raw: Any) -> list[float]:
        vector = [float(v) for v in raw]
        if self.cache is not None:
            self.cache.put(text, vector)
        return vector


def _caches_itself(embedder: Any) -> bool:
    """An ``EmbeddingClient`` (or an embedder saying ``caches_query_vectors = True``) has its own cache."""
    return isinstance(embedder, EmbeddingClient) or bool(getattr(embedder, "caches_query_vectors", False))
