"""Spelling correction on the real servers (ES 9, ES 8, OpenSearch 3 and 2): a misspelled product query
finds the product (both legs see the correction), a clean query is left untouched, a model number is
never "corrected", the phrase suggester where the index has a shingle subfield, a failing rewriter."""

from __future__ import annotations

import hashlib
import math
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from connector import connect
from connector.quality.load import load_corpus, plain_index_body
from connector.search import HybridSearch
from mappings import VectorField

pytestmark = [pytest.mark.integration]

DIMS = 16
SHOP = [
    {"_id": "gymbag", "title": "Adidas gym bag", "text": "Duffel bag for the gym, black"},
    {"_id": "shoes", "title": "Adidas running shoes", "text": "Light running shoes for men"},
    {"_id": "airpods", "title": "Apple AirPods Pro", "text": "Wireless earbuds with noise cancelling"},
    {"_id": "airpods2", "title": "AirPods case", "text": "Silicone case for AirPods"},
    {"_id": "sony", "title": "Sony WH1000XM5 headphones", "text": "Wireless noise cancelling headphones"},
    {"_id": "sony2", "title": "Sony WH1000XM5 ear pads", "text": "Replacement ear pads for WH1000XM5"},
    {"_id": "kettle", "title": "Electric kettle", "text": "Stainless steel kettle, 1.7 litre"},
    {"_id": "dumbbells", "title": "Hex dumbbells", "text": "Rubber-coated heads protect your floor"},
]


def hash_vector(text: str) -> list[float]:
    """A bag-of-words vector (each lower-cased word hashed to a dimension), unit length."""
    vector = [0.0] * DIMS
    for word in text.lower().split():
        vector[int(hashlib.sha256(word.encode()).hexdigest(), 16) % DIMS] += 1.0
    norm = math.sqrt(sum(v * v for v in vector)) or 1.0
    return [v / norm for v in vector]


class RecordingEmbedder:
    """Embeds with :func:`hash_vector` and remembers what it was asked to embed."""

    def __init__(self) -> None:
        self.texts: list[str] = []

    def embed_query(self, text: str) -> list[float]:
        self.texts.append(text)
        return hash_vector(text)


def _body(caps: Any, *, shingles: bool) -> dict[str, Any]:
    body = plain_index_body(caps, vector_fields=[VectorField(dims=DIMS, model_id="test/hash")])
    if shingles:
        analysis = body["settings"]["index"].setdefault("analysis", {})
        analysis.setdefault("analyzer", {})["shop_shingle"] = {
            "type": "custom",
            "tokenizer": "standard",
            "filter": ["lowercase", "shingle"],
        }
        title = body["mappings"]["properties"]["title"]
        title.setdefault("fields", {})["shingle"] = {"type": "text", "analyzer": "shop_shingle"}
    return body


@pytest.fixture(scope="module", params=[False, True], ids=["term", "phrase"])
def shop(request: pytest.FixtureRequest, cluster_url: str) -> Iterator[tuple[str, str, bool]]:
    """The shop loaded once per server (and per suggester: a shingle subfield or none)."""
    shingles = bool(request.param)
    index = f"i16-correction-{uuid.uuid4().hex[:10]}"
    with connect(cluster_url) as cluster:
        vectors = {d["_id"]: hash_vector(f"{d['title']} {d['text']}") for d in SHOP}
        body = _body(cluster.capabilities, shingles=shingles)
        report = load_corpus(cluster, index, SHOP, index_body=body, vectors=vectors)
        assert report.docs == len(SHOP) and report.failed == 0
    yield cluster_url, index, shingles
    with connect(cluster_url) as cluster:
        cluster.delete_index(index)


def _search(shop: tuple[str, str, bool], cluster: Any, **options: Any) -> tuple[HybridSearch, RecordingEmbedder]:
    embedder = RecordingEmbedder()
    return HybridSearch(cluster, shop[1], embedder=embedder, **options), embedder


def test_misspelled_query_finds_the_product_in_both_legs(shop: tuple[str, str, bool]) -> None:
    with connect(shop[0]) as cluster:
        search, embedder = _search(shop, cluster)
        assert search.profile.shingle_fields == ({"title": "title.shingle"} if shop[2] else {})
        off = search.search("airpoxds", mode="bm25", correct="off", source=False)
        assert off.ids == [] and off.correction is None
        response = search.search("airpoxds", mode="hybrid", strategy="client", source=False, explain=True)
        assert response.corrected_query == "airpods" and response.did_you_mean == "airpods"
        assert response.correction is not None
        assert response.correction.suggester == ("phrase" if shop[2] else "term")
        (change,) = response.correction.changes
        assert change.applied and change.original_doc_freq == 0 and "absent" in change.reason
        assert set(response.ids[:2]) == {"airpods", "airpods2"}
        # the typed text is embedded beside the suggest request; the corrected one again, for the dense leg
        assert embedder.texts == ["airpoxds", "airpods"]
        # the lexical leg rode with the suggestion (the typed text), and was sent again for the corrected one
        first, legs = (r.ndjson for r in response.requests if r.ndjson)
        assert "airpoxds airpods" not in str(first) and "airpoxds airpods" in str(legs)  # the original word kept
        assert response.round_trips == 2
        assert response.requests[0].note and "spelling correction" in response.requests[0].note
        bag = search.search("adidsa gym bag", mode="bm25", source=False)
        # An English-stemmed title (OpenSearch here) without a shingle subfield suggests the stem
        # "adida" (what the index holds): the lexical leg matches the same, the dense leg sees the stem.
        stemmed = cluster.capabilities.language_analyzers and not shop[2]
        assert bag.corrected_query == ("adida gym bag" if stemmed else "adidas gym bag")
        assert bag.ids[0] == "gymbag"


def test_real_words_absent_from_the_shop_are_left_alone(shop: tuple[str, str, bool]) -> None:
    # issue 23: "head" is absent from the shop ("heads" is there, unstemmed on ES without
    # analysis-common), "flashlight" and "wear" are absent: common English words, not typos.
    text = "flashlight you wear on your head"
    with connect(shop[0]) as cluster:
        search, embedder = _search(shop, cluster)
        response = search.search(text, mode="hybrid", strategy="client", source=False)
        assert response.corrected_query is None and response.did_you_mean is None
        assert embedder.texts == [text]  # the dense leg embedded the shopper's own words
        assert response.correction is not None
        assert not any(change.applied for change in response.correction.changes)


def test_clean_query_is_left_untouched(shop: tuple[str, str, bool]) -> None:
    with connect(shop[0]) as cluster:
        search, embedder = _search(shop, cluster)
        for mode in ("auto", "force"):
            response = search.search("adidas gym bag", correct=mode, source=False)  # type: ignore[arg-type]
            assert response.corrected_query is None and response.did_you_mean is None
            assert response.correction is not None and not any(c.applied for c in response.correction.changes)
            assert response.ids[0] == "gymbag"
        assert set(embedder.texts) == {"adidas gym bag"}  # embedded as typed (cached the second time)


def test_model_number_is_never_corrected(shop: tuple[str, str, bool]) -> None:
    with connect(shop[0]) as cluster:
        search, embedder = _search(shop, cluster)
        for mode in ("auto", "force"):
            response = search.search("sony wh1000xm4 headphones", correct=mode, source=False)  # type: ignore[arg-type]
            assert response.corrected_query is None and response.did_you_mean is None
            assert response.correction is not None
            assert all(c.original.lower() != "wh1000xm4" or not c.applied for c in response.correction.changes)
        assert set(embedder.texts) == {"sony wh1000xm4 headphones"}


class _BrokenRewriter:
    def rewrite(self, text: str) -> str:
        raise RuntimeError("model not loaded")


class _Rewriter:
    def rewrite(self, text: str) -> str:
        return text.replace("earphones", "earbuds")


def test_rewriter_runs_first_and_a_failing_one_falls_back(shop: tuple[str, str, bool]) -> None:
    if shop[2]:
        pytest.skip("the rewriter does not depend on the suggester")
    with connect(shop[0]) as cluster:
        search, embedder = _search(shop, cluster, rewriter=_Rewriter())
        response = search.search("wireless earphones", mode="bm25", source=False)
        assert response.correction is not None and response.correction.rewritten == "wireless earbuds"
        assert response.ids[0] == "airpods"
        broken, _ = _search(shop, cluster, rewriter=_BrokenRewriter(), correct="off")
        fallback = broken.search("airpods", mode="bm25", source=False)
        assert fallback.correction is not None and fallback.correction.rewrite_fallback
        assert "model not loaded" in (fallback.correction.rewrite_fallback_reason or "")
        assert fallback.ids[0] in {"airpods", "airpods2"}


def test_async_driver_corrects_the_same(shop: tuple[str, str, bool]) -> None:
    import asyncio

    from connector.search import AsyncHybridSearch
    from tests.integration.test_hybrid_search_async import ThreadedAsyncCluster

    with connect(shop[0]) as cluster:
        sync_search, _ = _search(shop, cluster)
        expected = sync_search.search("airpoxds", source=False, strategy="client")
        async_search = AsyncHybridSearch(ThreadedAsyncCluster(cluster), shop[1], embedder=RecordingEmbedder())
        got = asyncio.run(async_search.search("airpoxds", source=False, strategy="client"))
        assert got.corrected_query == expected.corrected_query == "airpods"
        assert got.ids == expected.ids
        assert got.correction is not None and got.correction.changes == expected.correction.changes  # type: ignore[union-attr]
