"""Bring your own client: the hybrid-search contract through every client kind, on real servers.

Kinds: ``ours`` (our URL transport), ``official`` (the app's ``Elasticsearch`` / ``OpenSearch``
handed to :func:`connector.connect`) and ``async`` (``AsyncElasticsearch`` / ``AsyncOpenSearch``
handed to :func:`connector.aconnect`).  Each kind must detect the same capabilities, return the
same search responses (hits, scores, explain, the requests that ran) as our own transport, and
raise the same :mod:`connector.errors` types.

ES 9 and OpenSearch 3 run through the main venv's clients (elasticsearch 9.x); the ES 8 server
needs the 8.x client, so its params run only where that client is installed:
``make test-es8-client`` (the ``.venv-es8`` overlay first on ``PYTHONPATH``, ``-m es8``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, TypeVar

import pytest

import connector.search
from connector import aconnect, as_cluster, connect
from connector.cluster.aio import AsyncCluster
from connector.cluster.client import Cluster
from connector.cluster.official import OfficialCluster
from connector.errors import ClusterApiError, ConfigError, SearchRequestError
from connector.search import FusionConfig, HybridSearch
from tests.fixtures.clusters import url_for
from tests.integration.test_hybrid_search import QUERY_VECTORS, TableEmbedder, corpus, create_index

elasticsearch = pytest.importorskip("elasticsearch")
opensearchpy = pytest.importorskip("opensearchpy")

pytestmark = [pytest.mark.integration]

T = TypeVar("T")
ES_CLIENT_MAJOR = int(elasticsearch.__versionstr__.partition(".")[0])
# Each server with the client major it supports: an ES 8 server refuses the 9.x client's media types.
SERVER_PARAMS = [
    pytest.param("es9", marks=[pytest.mark.es9], id="es9"),
    pytest.param("os3", marks=[pytest.mark.os3], id="os3"),
    pytest.param("es8", marks=[pytest.mark.es8], id="es8"),
]


def contract(key: str) -> list[tuple[str, dict[str, Any]]]:
    """The searches every kind must answer exactly as our own transport does (server form: the flavor's own)."""
    server_fusion = FusionConfig(method="linear", normalizer="min_max" if key.startswith("os") else "none")
    return [
        ("waterproof tent", {"mode": "bm25", "size": 5}),
        ("waterproof tent", {"mode": "knn", "size": 5, "filters": [{"term": {"color": "blue"}}]}),
        ("waterproof tent", {"mode": "hybrid", "size": 5, "strategy": "client", "explain": True}),
        ("camping gear", {"mode": "hybrid", "size": 5, "page": 2, "strategy": "client", "fusion": FusionConfig()}),
        ("waterproof tent", {"mode": "hybrid", "size": 5, "strategy": "server", "fusion": server_fusion}),
    ]


def _official_major_ok(server: str) -> None:
    if server == "es8" and ES_CLIENT_MAJOR != 8:
        pytest.skip("the ES 8 server needs the elasticsearch 8.x client: make test-es8-client")
    if server == "es9" and ES_CLIENT_MAJOR != 9:
        pytest.skip("the ES 9 server is tested with the elasticsearch 9.x client (the main venv)")


@pytest.fixture(scope="module", params=SERVER_PARAMS)
def server(request: pytest.FixtureRequest) -> tuple[str, str]:
    """``(key, url)`` of one server."""
    return str(request.param), url_for(request, str(request.param))


@pytest.fixture(scope="module")
def products(server: tuple[str, str]) -> Iterator[str]:
    """The hand-made corpus of test_hybrid_search, loaded once per server (deleted afterwards)."""
    import uuid

    key, url = server
    index = f"test-official-{key}-{uuid.uuid4().hex[:8]}"
    with connect(url) as cluster:
        create_index(cluster, index, corpus())
        yield index
        cluster.delete_index(index)


def sync_client(key: str, url: str) -> Any:
    return opensearchpy.OpenSearch(url) if key.startswith("os") else elasticsearch.Elasticsearch(url)


def async_client(key: str, url: str) -> Any:
    return opensearchpy.AsyncOpenSearch(url) if key.startswith("os") else elasticsearch.AsyncElasticsearch(url)


def _dump(response: Any) -> dict[str, Any]:
    """The response without what is a measurement (timings, the spelling correction's ``took_ms``) or unique to
    each search (its ``query_id``)."""
    dumped: dict[str, Any] = response.model_dump(mode="json", exclude={"timings", "query_id"})
    if dumped.get("correction"):
        dumped["correction"].pop("took_ms", None)
    return dumped


def reference(key: str, url: str, index: str) -> list[dict[str, Any]]:
    with connect(url) as cluster:
        search = HybridSearch(cluster, index, embedder=TableEmbedder(QUERY_VECTORS), max_depth=24)
        return [_dump(search.search(text, **options)) for text, options in contract(key)]


def run_async(make: Callable[[], Awaitable[T]]) -> T:
    return asyncio.run(make())  # type: ignore[arg-type]


def test_capabilities_are_detected_the_same_through_every_kind(server: tuple[str, str]) -> None:
    key, url = server
    _official_major_ok(key)
    with connect(url) as ours:
        expected = ours.capabilities
    official = connect(sync_client(key, url))
    assert isinstance(official, OfficialCluster) and official.capabilities == expected
    assert as_cluster(official) is official
    assert "Elasticsearch" in repr(official) or "OpenSearch" in repr(official)

    async def detect() -> None:
        client = async_client(key, url)
        try:
            cluster = await aconnect(client)
            assert cluster.capabilities == expected and cluster.client is client
        finally:
            await client.close()
        async with await aconnect(url) as own:  # our own transport, async
            assert own.capabilities == expected

    run_async(detect)
    with pytest.raises(ConfigError, match="aconnect"):
        connect(async_client(key, url))


def test_search_contract_through_the_official_sync_client(server: tuple[str, str], products: str) -> None:
    key, url = server
    _official_major_ok(key)
    expected = reference(key, url, products)
    client = sync_client(key, url)
    search = HybridSearch(connect(client), products, embedder=TableEmbedder(QUERY_VECTORS), max_depth=24)
    got = [_dump(search.search(text, **options)) for text, options in contract(key)]
    assert got == expected
    assert got[0]["hits"][0]["id"] == "d13" and got[1]["hits"][0]["id"] != "d00"  # bm25 winner; blue-only kNN
    with pytest.raises(SearchRequestError) as err:
        search.search("x", filters=[{"query_string": {"query": "x"}}])
    assert err.value.field == "filters[0]"  # type: ignore[attr-defined]


class AsyncTableEmbedder:
    def __init__(self) -> None:
        self.sync = TableEmbedder(QUERY_VECTORS)

    async def embed_query(self, text: str) -> list[float]:
        return self.sync.embed_query(text)


def test_search_contract_through_the_official_async_client(server: tuple[str, str], products: str) -> None:
    key, url = server
    _official_major_ok(key)
    async_search = getattr(connector.search, "AsyncHybridSearch", None)
    if async_search is None:
        pytest.skip("AsyncHybridSearch is not there yet")
    expected = reference(key, url, products)

    async def run() -> list[dict[str, Any]]:
        client = async_client(key, url)
        try:
            search = async_search(await aconnect(client), products, embedder=AsyncTableEmbedder(), max_depth=24)
            return [_dump(await search.search(text, **options)) for text, options in contract(key)]
        finally:
            await client.close()

    assert run_async(run) == expected


def test_cluster_calls_and_errors_match_across_kinds(server: tuple[str, str], products: str) -> None:
    """The cluster conveniences answer alike, and a failed request raises the same typed error."""
    key, url = server
    _official_major_ok(key)
    searches = [({}, {"query": {"term": {"color": "red"}}, "size": 3, "sort": ["price"]})]

    def sync_view(cluster: Cluster) -> tuple[Any, ...]:
        with pytest.raises(ClusterApiError) as err:
            cluster.search(f"{products}-missing", {"query": {"match_all": {}}})
        return (
            cluster.index_exists(products),
            cluster.index_exists(f"{products}-missing"),
            cluster.count(products),
            [h["_id"] for h in cluster.msearch(products, searches)[0]["hits"]["hits"]],
            sorted(cluster.get_mapping(products)["properties"]),
            (err.value.status, err.value.error_type),  # type: ignore[attr-defined]
        )

    async def async_view() -> tuple[Any, ...]:
        client = async_client(key, url)
        try:
            cluster: AsyncCluster = await aconnect(client)
            with pytest.raises(ClusterApiError) as err:
                await cluster.search(f"{products}-missing", {"query": {"match_all": {}}})
            return (
                await cluster.index_exists(products),
                await cluster.index_exists(f"{products}-missing"),
                await cluster.count(products),
                [h["_id"] for h in (await cluster.msearch(products, searches))[0]["hits"]["hits"]],
                sorted((await cluster.get_mapping(products))["properties"]),
                (err.value.status, err.value.error_type),  # type: ignore[attr-defined]
            )
        finally:
            await client.close()

    with connect(url) as ours:
        expected = sync_view(ours)
    assert expected[:4] == (True, False, 24, ["d00", "d01", "d02"])
    assert expected[5] == (404, "index_not_found_exception")
    assert sync_view(connect(sync_client(key, url))) == expected
    assert run_async(async_view) == expected


def test_jobs_and_loaders_take_the_official_client(server: tuple[str, str]) -> None:
    """``load_corpus`` (eval) and the migrator take the app's client as they take a Cluster."""
    import uuid

    from connector.quality.load import load_corpus
    from migrations import Migrator

    key, url = server
    _official_major_ok(key)
    client = sync_client(key, url)
    index = f"test-official-load-{uuid.uuid4().hex[:8]}"
    rows = [{"_id": f"p{i}", "title": f"passage {i}", "text": "some text"} for i in range(5)]
    try:
        report = load_corpus(client, index, rows)
        assert (report.docs, report.failed) == (5, 0)
        with connect(url) as ours:
            assert ours.count(index) == 5
        migrator = Migrator(client, index)
        assert isinstance(migrator.cluster, OfficialCluster)
        assert migrator.status().index == index  # reads its state index through the client
    finally:
        with connect(url) as ours:
            ours.delete_index(index)
