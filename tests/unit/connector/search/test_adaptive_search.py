"""The default (adaptive) fusion in a search: the word counts the correction's request carries decide the
legs' weights, the response and --explain show them; no request is added (in-memory cluster double)."""

from __future__ import annotations

from typing import Any

from connector.cluster.capabilities import Capabilities
from connector.search.explain import format_hits
from connector.search.hybrid import HybridSearch
from connector.search.models import DEFAULT_FUSION, FusionConfig

MAPPING = {
    "properties": {"title": {"type": "text"}, "embedding": {"type": "dense_vector", "dims": 2}},
    "_meta": {"eshybrid": {"vector_fields": {"embedding": {"model_id": "m", "dims": 2}}}},
}


def _hits(*pairs: tuple[str, float]) -> dict[str, Any]:
    return {"hits": {"hits": [{"_id": i, "_index": "shop", "_score": s, "_source": {"title": i}} for i, s in pairs]}}


class _Cluster:
    """The lexical leg finds dumbbells (an incidental word), the vector leg headlamps."""

    capabilities = Capabilities.from_version("elasticsearch", "9.1.0", license="basic")

    def __init__(self, counts: dict[str, int]) -> None:
        self.counts, self.bodies = counts, []

    def get_mapping(self, index: str) -> Any:
        return MAPPING

    def search(self, index: str, body: Any, params: Any = None) -> Any:
        self.bodies.append(body)
        if "aggs" in body:  # the suggestion with its word counts, or the counts alone (correction off)
            words = body["aggs"]["original_doc_freq"]["filters"]["filters"]
            buckets = {w: {"doc_count": self.counts.get(w, 0)} for w in words}
            return {"hits": {"hits": []}, "suggest": {}, "aggregations": {"original_doc_freq": {"buckets": buckets}}}
        return _hits(("dumbbells", 4.0))

    def msearch(self, index: str, searches: Any) -> Any:
        # the suggestion rides in the first _msearch beside the lexical leg (issue 24): answered as by search()
        suggested = [self.search(index, body) for _, body in searches if "suggest" in body]
        self.bodies.extend(body for _, body in searches if "suggest" not in body)
        lexical = _hits(("dumbbells", 4.0), ("dumbbells2", 3.0), ("lamp", 1.0))
        vector = _hits(("lamp", 0.81), ("lamp2", 0.80), ("dumbbells", 0.55))
        legs = [vector if "knn" in str(body) else lexical for _, body in searches if "suggest" not in body]
        return suggested + legs


class _Embedder:
    def embed_query(self, text: str) -> list[float]:
        return [1.0, 0.0]


def test_words_absent_from_the_index_give_the_vector_leg_the_query() -> None:
    cluster = _Cluster({"flashlight": 0, "wear": 0, "head": 0})
    search = HybridSearch(cluster, "shop", embedder=_Embedder(), max_depth=10)
    assert search.fusion == DEFAULT_FUSION and DEFAULT_FUSION.method == "adaptive"
    response = search.search("flashlight you wear on your head", size=2, explain=True)
    assert response.ids == ["lamp", "lamp2"] and response.strategy == "client"
    weights = response.fusion_weights
    assert weights is not None and weights.lexical == 0.0 and weights.vector == 1.0
    assert weights.absent_words == ["flashlight", "wear", "head"]
    assert response.round_trips == 2  # the counts rode in the correction's request (with the lexical leg)
    text = format_hits(response)
    assert "-- weights for this query: lexical 0.00 / vector 1.00" in text
    assert "absent from the index: flashlight, wear, head" in text


def test_words_in_the_index_keep_the_base_weights() -> None:
    cluster = _Cluster({"dumbbells": 3})
    response = HybridSearch(cluster, "shop", embedder=_Embedder(), max_depth=10).search("dumbbells", size=1)
    assert response.fusion_weights is not None and response.fusion_weights.lexical == 0.7
    assert response.ids == ["dumbbells"]


def test_correction_off_still_counts_the_words_beside_the_embedding() -> None:
    """No suggestion is asked, but the adaptive fusion's evidence is: the counts alone, in the first round trip."""
    cluster = _Cluster({})
    search = HybridSearch(cluster, "shop", embedder=_Embedder(), max_depth=10)
    response = search.search("flashlight you wear on your head", size=2, correct="off")
    assert response.fusion_weights is not None and response.fusion_weights.coverage == 0.0
    assert response.fusion_weights.lexical == 0.0 and response.round_trips == 2
    assert response.correction is None
    asked = [body for body in cluster.bodies if "aggs" in body]
    assert len(asked) == 1 and "suggest" not in asked[0]


def test_correction_off_with_a_fixed_fusion_asks_nothing_first() -> None:
    cluster = _Cluster({})
    search = HybridSearch(cluster, "shop", embedder=_Embedder(), max_depth=10)
    linear = FusionConfig(method="linear", lexical_weight=0.7, vector_weight=0.3)
    response = search.search("flashlight you wear on your head", size=2, correct="off", fusion=linear)
    assert response.fusion_weights is None and response.round_trips == 1
    assert not any("aggs" in body for body in cluster.bodies)


def test_an_explicit_fixed_fusion_has_no_per_query_weights() -> None:
    search = HybridSearch(_Cluster({}), "shop", embedder=_Embedder(), max_depth=10)
    linear = FusionConfig(method="linear", lexical_weight=0.7, vector_weight=0.3)
    assert search.search("head", size=1, fusion=linear, strategy="client").fusion_weights is None
