"""One query-vector cache on the search path: a repeated query is embedded once and cached once,
whichever embedder the search has (no network: an in-memory cluster and embedding service)."""

from __future__ import annotations

import base64
import json
from array import array
from typing import Any

import httpx
import numpy as np
import pytest

from connector.cluster.capabilities import Capabilities
from connector.errors import ModelMismatchError
from connector.search.hybrid import HybridSearch
from connector.search.query_vectors import QueryVectors
from connector.services.embedding import EmbeddingClient

VECTOR = [0.25, -0.5, 0.125]
MAPPING = {
    "_meta": {"eshybrid": {"vector_fields": {"embedding": {"model_id": "m", "dims": 3, "source_fields": ["title"]}}}},
    "properties": {"title": {"type": "text"}, "embedding": {"type": "dense_vector", "dims": 3}},
}


class _Cluster:
    """Answers one kNN leg and the page's ``_mget`` from memory."""

    capabilities = Capabilities.from_version("elasticsearch", "9.5.4", license="basic")

    def get_mapping(self, index: str) -> dict[str, Any]:
        return MAPPING

    def search(self, index: str, body: Any, *, params: Any = None) -> dict[str, Any]:
        return {"hits": {"hits": [{"_id": "d1", "_score": 1.0, "_index": index}]}}

    def msearch(self, index: str, searches: Any) -> list[dict[str, Any]]:
        return [self.search(index, body) for _, body in searches]

    def request(self, method: str, path: str, *, body: Any = None, params: Any = None) -> Any:
        class _Answer:
            body = {"docs": [{"_id": "d1", "found": True, "_source": {"title": "Tent"}}]}

        return _Answer()


class _CountingEmbedder:
    """An embedder without a cache of its own."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def embed_query(self, text: str) -> list[float]:
        self.calls.append(text)
        return VECTOR


class _Service:
    """The embedding service's ``/v1/embeddings`` and ``/info``, counting query embeddings."""

    def __init__(self) -> None:
        self.embedded: list[str] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/info"):
            return httpx.Response(200, json={"model_id": "m", "dims": 3})
        texts = json.loads(request.content)["input"]
        self.embedded.extend(texts)
        vector = base64.b64encode(np.array(VECTOR, dtype="<f4").tobytes()).decode()
        data = [{"object": "embedding", "index": i, "embedding": vector} for i in range(len(texts))]
        return httpx.Response(200, json={"object": "list", "data": data, "model": "m", "usage": {}})


def _search_twice(search: HybridSearch) -> None:
    for _ in range(2):
        response = search.search("red tent", mode="knn", size=1)
        assert response.ids == ["d1"]


def test_an_embedding_client_is_the_one_cache() -> None:
    service = _Service()
    client = EmbeddingClient("http://svc/embed", transport=httpx.MockTransport(service))
    search = HybridSearch(_Cluster(), "p", embedder=client, check_model=False)
    _search_twice(search)
    assert service.embedded == ["red tent"]  # embedded once: the client's own cache answered the second time
    assert search._query_vectors is not None and search._query_vectors.cache is None  # not cached again here
    search.close()


def test_an_embedding_client_without_a_cache_is_not_given_one() -> None:
    service = _Service()
    client = EmbeddingClient("http://svc/embed", transport=httpx.MockTransport(service), query_cache_size=0)
    search = HybridSearch(_Cluster(), "p", embedder=client, check_model=False, query_cache_size=1024)
    _search_twice(search)
    assert service.embedded == ["red tent", "red tent"]  # the client's query_cache_size=0 is honoured
    search.close()


def test_other_embedders_are_cached_by_the_search() -> None:
    embedder = _CountingEmbedder()
    search = HybridSearch(_Cluster(), "p", embedder=embedder, check_model=False)
    _search_twice(search)
    assert embedder.calls == ["red tent"]
    assert search._query_vectors is not None and search._query_vectors.cached == 1


def test_query_cache_size_zero_turns_the_search_cache_off() -> None:
    embedder = _CountingEmbedder()
    search = HybridSearch(_Cluster(), "p", embedder=embedder, check_model=False, query_cache_size=0)
    _search_twice(search)
    assert embedder.calls == ["red tent", "red tent"]


def test_the_cache_is_an_lru_of_its_size() -> None:
    embedder = _CountingEmbedder()
    vectors = QueryVectors(embedder, cache_size=2, check_model=False)
    for text in ("a", "b", "a", "c", "a", "b"):
        assert vectors.vector(text) == VECTOR
    assert embedder.calls == ["a", "b", "c", "b"]  # "b" was the least recently used when "c" came
    assert vectors.cached == 2


def test_a_cached_vector_is_kept_compact_and_handed_out_as_a_list_of_its_own() -> None:
    """The caches hold ``array("d")`` (a quarter of a list of floats' memory), the same floats; a caller that
    changes its list does not change the cache."""
    raw = [0.1, -2.5e-8, 1 / 3]
    vectors = QueryVectors(_CountingEmbedder(), cache_size=2, check_model=False)
    vectors._store("tent", raw)
    first = vectors.vector("tent")
    assert first == raw and isinstance(first, list)
    first[0] = 9.0
    assert vectors.vector("tent") == raw
    assert vectors.cache is not None and isinstance(vectors.cache._items["tent"], array)

    client = EmbeddingClient("http://embed.test", transport=httpx.MockTransport(_Service()))
    assert client.embed_query("tent") == client.embed_query("tent") == [np.float32(v).item() for v in VECTOR]
    assert all(isinstance(v, array) for v in client._cache._items.values())


class _CheckedEmbedder(_CountingEmbedder):
    def __init__(self, model_id: str) -> None:
        super().__init__()
        self.model_id = model_id
        self.checks = 0

    def check_compatible(self, meta: dict[str, Any]) -> None:
        self.checks += 1
        if meta["model_id"] != self.model_id:
            raise ModelMismatchError("other model")


def test_the_model_is_checked_once_and_again_after_a_mismatch() -> None:
    good = _CheckedEmbedder("m")
    vectors = QueryVectors(good, cache_size=8)
    vectors.vector("a", vector_meta={"model_id": "m"})
    vectors.vector("b", vector_meta={"model_id": "m"})
    assert good.checks == 1
    bad = _CheckedEmbedder("other")
    vectors = QueryVectors(bad, cache_size=8)
    for _ in range(2):
        with pytest.raises(ModelMismatchError):
            vectors.vector("a", vector_meta={"model_id": "m"})
    assert bad.checks == 2 and bad.calls == []


def test_the_searchs_own_cache_is_the_clients_kind_counted_and_copied_out() -> None:
    from prometheus_client import REGISTRY

    def count(result: str) -> float:
        return REGISTRY.get_sample_value("eshybrid_query_vector_cache_requests_total", {"result": result}) or 0.0

    before = count("hit"), count("miss")
    vectors = QueryVectors(_CountingEmbedder(), cache_size=4, check_model=False, prefer_local=False)
    first = vectors.vector("red tent")
    first.append(9.0)  # a caller's list is its own: the cache keeps the vector it was given
    assert vectors.vector("red tent") == VECTOR
    assert (count("hit") - before[0], count("miss") - before[1]) == (1, 1)
    assert vectors.cached == 1
