"""Server-side vs client-side fusion on the same cluster and data (OpenSearch with neural-search).

OpenSearch's hybrid query normalizes each sub-query over the candidates it collected per
shard: with one shard and the same depth (``pagination_depth`` = lexical size = kNN ``k``)
both sides see the same candidates, so min-max + arithmetic_mean must give client-side
min-max linear fusion's top 10. Also pins down how OpenSearch scores a document absent from
one sub-query (``os_missing_policy``).
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator, Sequence
from typing import Any

import pytest

from connector import connect
from connector.cluster.client import Cluster
from connector.search import FusionConfig, HybridSearch
from connector.search.fusion import LegHit, linear_fuse
from connector.search.hybrid import os_missing_policy
from tests.integration.test_hybrid_search import TableEmbedder, create_index

pytestmark = [pytest.mark.integration]

DIMS = 16
DEPTH = 50
WORDS = (
    "tent stove lantern backpack chair tarp rope knife bottle jacket boots gloves hat map compass "
    "red blue green light heavy waterproof warm compact folding steel cotton wool rain snow trail"
).split()
QUERIES = [
    "waterproof tent",
    "warm jacket",
    "folding chair",
    "steel knife",
    "rain boots",
    "compact stove",
    "light backpack",
    "wool hat",
]


def _unit(values: Sequence[float]) -> list[float]:
    norm = math.sqrt(sum(v * v for v in values))
    return [v / norm for v in values]


def synthetic_corpus(seed: int = 7, n: int = 300) -> tuple[list[dict[str, Any]], dict[str, list[float]]]:
    rng = random.Random(seed)
    docs = []
    for i in range(n):
        title = " ".join(rng.choice(WORDS) for _ in range(rng.randint(2, 5)))
        text = " ".join(rng.choice(WORDS) for _ in range(rng.randint(6, 18)))
        docs.append(
            {
                "_id": f"doc{i:04d}",
                "title": title,
                "text": text,
                "color": rng.choice(["red", "blue"]),
                "price": rng.randint(1, 200),
                "embedding": _unit([rng.gauss(0, 1) for _ in range(DIMS)]),
            }
        )
    queries = {q: _unit([rng.gauss(0, 1) for _ in range(DIMS)]) for q in QUERIES}
    return docs, queries


@pytest.fixture(params=[pytest.param("os3", marks=pytest.mark.os3), pytest.param("os2", marks=pytest.mark.os2)])
def cluster(request: pytest.FixtureRequest) -> Iterator[Cluster]:
    with connect(str(request.getfixturevalue(f"{request.param}_url"))) as c:
        if not c.capabilities.supports("os_hybrid_query"):
            pytest.skip(f"{c.capabilities.display_name} has no neural-search plugin")
        yield c


@pytest.fixture
def synthetic(cluster: Cluster, index_name: str) -> tuple[str, dict[str, list[float]]]:
    docs, queries = synthetic_corpus()
    create_index(cluster, index_name, docs, dims=DIMS)
    return index_name, queries


def assert_same_top(client: Sequence[tuple[str, float]], server_ids: Sequence[str], *, tol: float = 1e-5) -> None:
    """Same ids in the same order, except among equal scores (closer than ``tol``: float32 vs float64).

    ``client`` goes deeper than ``server_ids`` so that a tie across the cut is seen: ties are
    ordered by ``_id`` client-side and by Lucene doc order server-side.
    """
    assert len(client) >= len(server_ids)
    scores = dict(client)
    for position, ((client_id, client_score), server_id) in enumerate(zip(client, server_ids)):
        if client_id != server_id:
            assert server_id in scores, f"position {position + 1}: server has {server_id}, not in client top"
            assert abs(scores[server_id] - client_score) < tol, (
                f"position {position + 1}: client {client_id} ({client_score}) vs server {server_id} "
                f"({scores[server_id]})"
            )


@pytest.mark.parametrize(
    "fusion",
    [
        FusionConfig(method="linear", normalizer="min_max", lexical_weight=0.5, vector_weight=0.5),
        FusionConfig(method="linear", normalizer="min_max", lexical_weight=0.3, vector_weight=0.7),
        FusionConfig(method="linear", normalizer="l2", lexical_weight=0.5, vector_weight=0.5),
    ],
    ids=["minmax-0.5", "minmax-0.3", "l2-0.5"],
)
def test_server_and_client_linear_give_the_same_top_10(
    cluster: Cluster, synthetic: tuple[str, dict[str, list[float]]], fusion: FusionConfig
) -> None:
    index, queries = synthetic
    search = HybridSearch(cluster, index, embedder=TableEmbedder(queries), max_depth=DEPTH)
    compared = 0
    for text in QUERIES:
        for filters in ([], [{"term": {"color": "blue"}}]):
            client = search.search(text, size=20, fusion=fusion, strategy="client", filters=filters, source=False)
            server = search.search(text, size=10, fusion=fusion, strategy="server", filters=filters, source=False)
            assert server.strategy == "server" and server.server_form == "os_hybrid_query"
            assert_same_top([(h.id, h.score) for h in client.hits], server.ids)
            if fusion.normalizer == "min_max":
                # OpenSearch floors a leg's minimum at 0.001 instead of 0; otherwise same scores.
                for c, s in zip(client.hits[:10], server.hits):
                    if c.id == s.id:
                        assert s.score == pytest.approx(c.score, abs=1e-3)
            compared += 1
    assert compared == 2 * len(QUERIES)


def test_auto_picks_the_server_form_for_linear_and_rrf(
    cluster: Cluster, synthetic: tuple[str, dict[str, list[float]]]
) -> None:
    index, queries = synthetic
    search = HybridSearch(cluster, index, embedder=TableEmbedder(queries), max_depth=DEPTH)
    linear = search.search("warm jacket", size=10, fusion=FusionConfig(method="linear"))
    assert linear.server_form == "os_hybrid_query"
    rrf = search.search("warm jacket", size=10, fusion=FusionConfig())  # RRF k=60, equal weights
    assert rrf.server_form == "os_hybrid_query"
    client = search.search("warm jacket", size=10, strategy="client", fusion=FusionConfig())
    assert len(rrf.hits) == len(client.hits) == 10
    # RRF ties (same rank in one leg only) are ordered by _id client-side and by Lucene doc order
    # server-side; the scores at each position must agree.
    assert [round(h.score, 6) for h in rrf.hits] == [round(h.score, 6) for h in client.hits]
    # explain needs the legs: client-side
    explained = search.search("warm jacket", size=10, explain=True, fusion=FusionConfig())
    assert explained.strategy == "client" and explained.ids == client.ids


def test_missing_subquery_counts_as_zero(cluster: Cluster, index_name: str) -> None:
    """A doc found by one sub-query only: arithmetic_mean counts the other as 0 with its weight."""
    docs = [
        {"_id": "a", "title": "red red red red", "text": "", "embedding": [0.0, 1.0, 0.0, 0.0]},
        {"_id": "b", "title": "red tent", "text": "", "embedding": [1.0, 0.1, 0.0, 0.0]},
        {"_id": "c", "title": "red chair blue", "text": "", "embedding": [1.0, 0.3, 0.0, 0.0]},
        {"_id": "d", "title": "blue", "text": "", "embedding": [1.0, 0.0, 0.0, 0.0]},
    ]
    create_index(cluster, index_name, docs)
    search = HybridSearch(
        cluster,
        index_name,
        embedder=TableEmbedder({"red": [1.0, 0.0, 0.0, 0.0]}),
        max_depth=3,
        lexical_fields={"title": 1.0},
    )
    fusion = FusionConfig(method="linear")
    server = {h.id: h.score for h in search.search("red", size=3, fusion=fusion, strategy="server").hits}
    legs = search.retrieve_legs("red")
    for policy, expected_equal in (("zero", True), ("ignore", False)):
        client = {d.id: d.score for d in linear_fuse(legs, weights={"lexical": 1, "vector": 1}, missing=policy)}
        # "a" is lexical rank 1 and not among the 3 nearest vectors: 1.0 under "ignore", 0.5 under "zero".
        assert (server["a"] == pytest.approx(client["a"], abs=1e-3)) is expected_equal, policy
    assert os_missing_policy(cluster.capabilities) == "zero"
    assert {leg: [h.id for h in hits] for leg, hits in legs.items()}["vector"] == ["d", "b", "c"]
    assert isinstance(legs["lexical"][0], LegHit)
