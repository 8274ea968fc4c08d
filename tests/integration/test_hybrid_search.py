"""HybridSearch on the four real servers: expected docs, filters inside kNN, pagination, explain,
console text, server-side forms and the rerank hook.

The corpus is small and hand-made, with 4-dim vectors chosen so each property is decidable
(the nearest vectors are "red", the lexical winner is not the vector winner...). Queries are
embedded by a lookup table (an ``Embedder``): the embedding service path is covered by
test_hybrid_search_serve.py; the cluster is always real.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import pytest

from connector.cluster.client import Cluster
from connector.errors import PaginationDepthError, SearchRequestError
from connector.search import FusionConfig, HybridSearch
from connector.search.console import render_response
from connector.search.models import DEFAULT_FUSION
from mappings import TextField, VectorField, build_index_body

pytestmark = [pytest.mark.integration]

DIMS = 4
QUERY_VECTORS = {
    "waterproof tent": [1.0, 0.0, 0.0, 0.0],
    "camping gear": [0.7, 0.7, 0.1, 0.0],
}
_NOUNS = ["tent", "stove", "lantern", "backpack", "chair", "tarp"]


def corpus() -> list[dict[str, Any]]:
    """24 products: d00-d11 are red with vectors near [1,0,0,0] (d00 nearest), d12-d23 blue and far.

    "waterproof tent" is lexically strongest in d13 (blue, far vector), so the lexical and
    vector winners differ.
    """
    docs = []
    for i in range(24):
        red = i < 12
        vector = [1.0, 0.05 * i, 0.02, 0.0] if red else [0.1 * (i - 11), 1.0, 0.3, 0.1]
        noun = _NOUNS[i % len(_NOUNS)]
        title = f"{'red' if red else 'blue'} {noun} camping gear {i}"
        text = "sturdy outdoor equipment " + ("gear " * (i % 3))
        if i == 13:
            title, text = "waterproof tent waterproof tent", "a waterproof tent for heavy rain"
        if i == 1:
            text += " waterproof"
        docs.append(
            {
                "_id": f"d{i:02d}",
                "title": title,
                "text": text,
                "color": "red" if red else "blue",
                "price": 10 + i,
                "embedding": vector,
            }
        )
    return docs


class TableEmbedder:
    """Query vectors from a table (unknown text: an error, so a typo cannot pass silently)."""

    def __init__(self, table: dict[str, list[float]]) -> None:
        self.table = table
        self.calls = 0

    def embed_query(self, text: str) -> list[float]:
        self.calls += 1
        return list(self.table[text])


def create_index(cluster: Cluster, index: str, docs: Sequence[dict[str, Any]], *, dims: int = DIMS) -> None:
    """A hybrid index (1 shard) built by the mappings builders, loaded and refreshed."""
    body = build_index_body(
        cluster.capabilities,
        text_fields=[TextField("title"), TextField("text")],
        vector_fields=[VectorField(dims=dims, model_id="test/hand-made")],
        extra_properties={"color": {"type": "keyword"}, "price": {"type": "integer"}},
        number_of_shards=1,
        number_of_replicas=0,
    )
    cluster.create_index(index, body)
    lines: list[dict[str, Any]] = []
    for doc in docs:
        lines += [{"index": {"_index": index, "_id": doc["_id"]}}, {k: v for k, v in doc.items() if k != "_id"}]
    result = cluster.bulk(lines, refresh=True)
    assert not result["errors"], result


@pytest.fixture
def products(cluster: Cluster, index_name: str) -> str:
    create_index(cluster, index_name, corpus())
    return index_name


def searcher(cluster: Cluster, index: str, **options: Any) -> HybridSearch:
    return HybridSearch(cluster, index, embedder=TableEmbedder(QUERY_VECTORS), **options)


def test_each_mode_finds_its_expected_docs(cluster: Cluster, products: str) -> None:
    search = searcher(cluster, products, max_depth=24)
    bm25 = search.search("waterproof tent", mode="bm25", size=5)
    knn = search.search("waterproof tent", mode="knn", size=5)
    hybrid = search.search("waterproof tent", mode="hybrid", size=5, strategy="client")
    assert bm25.ids[0] == "d13" and bm25.strategy == "single"
    assert knn.ids[:3] == ["d00", "d01", "d02"]
    assert {"d13", "d00"} <= set(hybrid.ids)  # both legs' winners
    # the default (min-max 0.7/0.3) leans lexical: the lexical winner leads
    assert hybrid.ids[0] == "d13" and hybrid.fusion == DEFAULT_FUSION
    rrf = search.search("waterproof tent", mode="hybrid", size=5, strategy="client", fusion=FusionConfig())
    assert rrf.ids[0] == "d00"  # RRF: vector rank 1 and lexically matched ("tent"): in both legs
    assert rrf.hits[0].source is not None and "embedding" not in rrf.hits[0].source
    assert rrf.hits[0].source["title"].startswith("red")


def test_filter_is_applied_inside_knn_as_a_prefilter(cluster: Cluster, products: str) -> None:
    """k=5 and the 12 nearest docs are red: filtering blue must still give 5 blue hits.

    A post-filter over the top 5 would leave nothing; the nearest doc (d00) is excluded.
    """
    search = searcher(cluster, products, max_depth=5)
    blue = [{"term": {"color": "blue"}}]
    response = search.search("waterproof tent", mode="knn", filters=blue, size=5)
    assert len(response.hits) == 5
    assert all(hit.source and hit.source["color"] == "blue" for hit in response.hits)
    assert "d00" not in response.ids
    hybrid = search.search("waterproof tent", mode="hybrid", filters=blue, size=5, strategy="client")
    assert len(hybrid.hits) == 5 and all(h.source and h.source["color"] == "blue" for h in hybrid.hits)
    ranged = search.search(
        "camping gear", mode="hybrid", size=5, strategy="client", filters=[{"range": {"price": {"gte": 30}}}]
    )
    assert ranged.hits and all(h.source and h.source["price"] >= 30 for h in ranged.hits)


def test_knn_leg_shape_returns_what_the_knn_section_returns(cluster: Cluster, products: str) -> None:
    """ES >= 8.12 runs the kNN leg as a ``knn`` query (no DFS phase): same hits, same scores."""
    from connector.search import query_builder as qb

    caps = cluster.capabilities
    if caps.flavor != "elasticsearch":
        assert caps.knn_leg_shape == "os_knn_query"
        return
    assert caps.knn_leg_shape == "es_knn_query"
    search = searcher(cluster, products, max_depth=6)
    for text, filters in (("waterproof tent", []), ("camping gear", [{"term": {"color": "blue"}}])):
        vector = QUERY_VECTORS[text]
        leg = search.leg_bodies("", vector, filters=filters)["vector"]
        assert "knn" in leg["query"] and "knn" not in leg
        section = qb.knn_leg_body(
            vector, knn_shape="es_knn_section", field="embedding", k=6, num_candidates=100, filters=filters
        )
        got = [(h["_id"], h["_score"]) for h in cluster.search(products, leg)["hits"]["hits"]]
        want = [(h["_id"], h["_score"]) for h in cluster.search(products, section)["hits"]["hits"]]
        assert got == want and len(got) == 6
        if filters:
            assert all(int(doc_id[1:]) >= 12 for doc_id, _ in got)  # pre-filtered: 6 blue docs


@pytest.mark.parametrize("strategy", ["client", "auto"])
def test_pages_are_consistent_and_bounded(cluster: Cluster, products: str, strategy: str) -> None:
    search = searcher(cluster, products, max_depth=20)
    whole = search.search("camping gear", size=20, strategy=strategy, source=False)  # type: ignore[arg-type]
    pages: list[str] = []
    for page in range(1, 5):
        response = search.search("camping gear", size=5, page=page, strategy=strategy)  # type: ignore[arg-type]
        assert [h.rank for h in response.hits] == list(range(5 * page - 4, 5 * page + 1))
        pages += response.ids
    assert pages == whole.ids and len(set(pages)) == 20
    with pytest.raises(PaginationDepthError) as err:
        search.search("camping gear", size=5, page=5, strategy=strategy)  # type: ignore[arg-type]
    assert err.value.max_depth == 20  # type: ignore[attr-defined]


def test_explain_matches_the_legs(cluster: Cluster, products: str) -> None:
    search = searcher(cluster, products, max_depth=24)
    fusion = FusionConfig(method="linear", lexical_weight=0.3, vector_weight=0.7)
    response = search.search("waterproof tent", size=10, explain=True, fusion=fusion, strategy="client")
    legs = search.retrieve_legs("waterproof tent")
    lexical_rank = {h.id: r for r, h in enumerate(sorted(legs["lexical"], key=lambda h: (-h.score, h.id)), 1)}
    for hit in response.hits:
        e = hit.explanation
        assert e is not None and e.strategy == "client" and e.fusion == fusion.describe()
        assert e.lexical is not None and e.vector is not None and e.rerank_score is None
        assert e.lexical.rank == lexical_rank.get(hit.id)
        assert (e.lexical.weight, e.vector.weight) == (0.3, 0.7)
        contributions = e.lexical.contribution + e.vector.contribution
        assert e.fused_score == pytest.approx(contributions / 1.0) == pytest.approx(hit.score)
    assert response.hits[0].explanation.vector.normalized is not None  # type: ignore[union-attr]


def test_console_text_is_what_ran(cluster: Cluster, products: str) -> None:
    search = searcher(cluster, products, max_depth=10)
    response = search.search("waterproof tent", size=3, strategy="client", filters=[{"term": {"color": "red"}}])
    text = render_response(response)
    blocks = [b for b in text.split("\n\n") if any(line and not line.startswith("#") for line in b.splitlines())]
    # first the spelling correction (on by default: the suggest request) with the lexical leg and its top hits
    # again with their sources (they need no vector), replayable as printed
    first = [line for line in blocks.pop(0).splitlines() if not line.startswith("#")]
    assert first[0] == f"GET {products}/_msearch"
    early = [json.loads(line) for line in first[1:]]
    assert len(early) == 6 and "suggest" in early[1]
    assert early[3]["query"]["bool"]["filter"] == [{"term": {"color": "red"}}] and early[3]["_source"] is False
    assert early[5]["_source"] == {"excludes": ["embedding"]} and early[5]["size"] == 6  # twice the page's end
    replayed = cluster.request("POST", f"/{products}/_msearch", body=early, ndjson=True).body["responses"]
    assert "suggest" in replayed[0] and [h["_id"] for h in replayed[1]["hits"]["hits"]]  # run as printed
    # then the kNN leg (it waited for the vector) and its top hits with sources: the page needs no _mget
    lines = [line for line in blocks[0].splitlines() if not line.startswith("#")]
    assert lines[0] == f"GET {products}/_msearch"
    bodies = [json.loads(line) for line in lines[1:]]
    assert len(bodies) == 4 and "knn" in str(bodies[1]) and bodies[3]["_source"] == {"excludes": ["embedding"]}
    assert len(blocks) == 1
    assert response.round_trips == 2 and all(hit.source for hit in response.hits)


def test_server_side_forms(cluster: Cluster, products: str) -> None:
    caps = cluster.capabilities
    search = searcher(cluster, products, max_depth=20)
    if caps.supports("es_query_knn"):
        raw = FusionConfig(method="linear", normalizer="none")
        response = search.search("waterproof tent", size=5, fusion=raw, strategy="server", explain=True)
        assert response.server_form == "es_query_knn" and response.hits[0].explanation is not None
        assert {"d13", "d00"} & set(response.ids)
    if caps.supports("os_hybrid_query"):
        response = search.search("waterproof tent", size=5, fusion=FusionConfig(method="linear"), strategy="server")
        assert response.server_form == "os_hybrid_query" and len(response.hits) == 5
        assert response.requests[-1].params["search_pipeline"].startswith("eshybrid-linear-")
    elif not caps.supports("es_rrf_retriever"):
        with pytest.raises(SearchRequestError):
            search.search("waterproof tent", size=5, strategy="server")


class _ReverseReranker:
    def score(self, query: str, documents: Sequence[str]) -> list[float]:
        return [float(i) for i in range(len(documents))]  # the last fused doc scores best


class _BrokenReranker:
    def score(self, query: str, documents: Sequence[str]) -> list[float]:
        raise RuntimeError("model fell over")


def test_rerank_hook_and_fallback(cluster: Cluster, products: str) -> None:
    fused = searcher(cluster, products, max_depth=20).search("camping gear", size=10, source=False)
    reranked = searcher(cluster, products, max_depth=20, reranker=_ReverseReranker(), rerank_window=10).search(
        "camping gear", mode="hybrid+rerank", size=10, explain=True
    )
    assert reranked.reranked and not reranked.rerank_fallback
    assert reranked.ids == list(reversed(fused.ids))
    assert reranked.hits[0].explanation.rerank_score == 9.0  # type: ignore[union-attr]
    broken = searcher(cluster, products, max_depth=20, reranker=_BrokenReranker()).search(
        "camping gear", mode="hybrid+rerank", size=10
    )
    assert broken.rerank_fallback and not broken.reranked and broken.ids == fused.ids


def test_bad_requests_name_the_field(cluster: Cluster, products: str) -> None:
    search = searcher(cluster, products)
    with pytest.raises(SearchRequestError) as err:
        search.search("x", filters=[{"query_string": {"query": "x"}}])
    assert err.value.field == "filters[0]"  # type: ignore[attr-defined]
    plain = HybridSearch(cluster, products)  # no embedder
    assert plain.search("waterproof tent", mode="bm25").ids[0] == "d13"
    with pytest.raises(SearchRequestError) as err:
        plain.search("waterproof tent", mode="hybrid")
    assert err.value.field == "mode"  # type: ignore[attr-defined]
