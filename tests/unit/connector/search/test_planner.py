"""The search planner (pure): golden plans for the shapes a search takes, and the BM25 page standing for the
lexical leg exactly (ties across the page's end fall back to the leg), over an in-memory cluster double."""

from __future__ import annotations

from typing import Any

from connector.cluster.capabilities import Capabilities
from connector.errors import EmbeddingServiceUnavailable
from connector.search.hybrid import HybridSearch
from connector.search.planner import plan_search
from tests.unit._golden import GoldenFiles

check_golden = GoldenFiles(prefix="search_plan_").check

BASE: dict[str, Any] = {
    "mode": "hybrid",
    "has_text": True,
    "correct": "auto",
    "likely_form": None,
    "vector_refused": False,
    "personal": False,
    "image_signal": False,
    "first_rank": 0,
    "size": 10,
    "max_depth": 100,
    "source": True,
}

CASES: dict[str, dict[str, Any]] = {
    "default": {},
    "correction_off": {"correct": "off"},
    "correction_off_adaptive": {"correct": "off", "adaptive": True},
    "default_adaptive": {"adaptive": True},
    "breaker_open_adaptive": {"vector_refused": True, "correct": "off", "adaptive": True},
    "knn_adaptive": {"mode": "knn", "correct": "off", "adaptive": True},
    "bm25": {"mode": "bm25"},
    "bm25_page_3": {"mode": "bm25", "first_rank": 20},
    "bm25_last_page": {"mode": "bm25", "first_rank": 90},
    "breaker_open": {"vector_refused": True},
    "breaker_open_server_form": {"vector_refused": True, "likely_form": "es_rrf_retriever"},
    "breaker_open_image_signal": {"vector_refused": True, "image_signal": True},
    "breaker_open_personal": {"vector_refused": True, "personal": True},
    "knn": {"mode": "knn"},
    "server_form": {"likely_form": "es_rrf_retriever"},
    "rerank": {"mode": "hybrid+rerank"},
    "ids_only": {"source": False},
    "example_image": {"mode": "knn", "has_text": False, "image_signal": True},
}


def test_golden_plans() -> None:
    plans = {name: plan_search(**{**BASE, **case}).to_dict() for name, case in CASES.items()}
    check_golden("shapes", plans)


MAPPING = {
    "properties": {"title": {"type": "text"}, "embedding": {"type": "dense_vector", "dims": 2}},
    "_meta": {"eshybrid": {"vector_fields": {"embedding": {"model_id": "m", "dims": 2}}}},
}


class _Cluster:
    """Scores ``a``..``f``; ``scores`` may tie. Answers the page (``size`` hits) and the lexical leg alike."""

    capabilities = Capabilities.from_version("elasticsearch", "9.1.0", license="basic")

    def __init__(self, scores: dict[str, float]) -> None:
        self.scores, self.sent = scores, []

    def get_mapping(self, index: str) -> Any:
        return MAPPING

    def _answer(self, body: Any) -> Any:
        if "suggest" in body:
            return {"hits": {"hits": []}, "suggest": {}}
        # the cluster's order: score, then its own (insertion) order, not _id
        ranked = sorted(self.scores.items(), key=lambda kv: -kv[1])[: body["size"]]
        hits = [{"_id": i, "_index": "shop", "_score": s, "_source": {"title": i}} for i, s in ranked]
        return {"hits": {"hits": hits, "total": {"value": len(self.scores), "relation": "eq"}}}

    def search(self, index: str, body: Any, params: Any = None) -> Any:
        self.sent.append(body)
        return self._answer(body)

    def msearch(self, index: str, searches: Any) -> Any:
        self.sent.extend(body for _, body in searches)
        return [self._answer(body) for _, body in searches]


def _pages(scores: dict[str, float], **options: Any) -> tuple[list[list[str]], list[int], int]:
    cluster = _Cluster(scores)
    search = HybridSearch(cluster, "shop", max_depth=6)
    responses = [search.search("tent", mode="bm25", size=2, page=p, **options) for p in (1, 2, 3)]
    return [r.ids for r in responses], [r.round_trips for r in responses], responses[0].candidates or 0


def test_the_bm25_page_is_one_request_and_the_leg_s_slice() -> None:
    scores = {"f": 6.0, "e": 5.0, "d": 4.0, "c": 3.0, "b": 2.0, "a": 1.0}
    pages, trips, candidates = _pages(scores)
    assert pages == [["f", "e"], ["d", "c"], ["b", "a"]] and trips == [1, 1, 1] and candidates == 6


def test_a_tie_across_the_page_s_end_falls_back_to_the_leg() -> None:
    # "z" and "b" tie across page 1's end: the leg's ranking breaks the tie by _id ("b" first), the cluster did not
    scores = {"f": 6.0, "z": 5.0, "b": 5.0, "c": 3.0, "d": 2.0, "a": 1.0}
    pages, trips, _ = _pages(scores)
    assert pages == [["f", "b"], ["z", "c"], ["d", "a"]] and trips == [2, 1, 1]
    off, _, _ = _pages(scores, correct="off")
    assert off == pages


def test_the_open_breaker_sends_the_page_with_the_suggestion() -> None:
    class _Down:
        def embed_query(self, text: str) -> list[float]:
            raise EmbeddingServiceUnavailable("connection refused", retryable=True)

    cluster = _Cluster({"f": 6.0, "e": 5.0, "d": 4.0})
    search = HybridSearch(cluster, "shop", embedder=_Down(), max_depth=6, breaker_failures=1)
    first = search.search("tent", size=2)
    assert first.vector_fallback and first.round_trips == 1  # the lexical leg rode with the suggestion
    second = search.search("tent", size=2)
    assert second.vector_fallback and "skipped" in (second.vector_fallback_reason or "")
    assert second.ids == first.ids == ["f", "e"] and second.round_trips == 1 and second.strategy == "single"
    assert [b.get("size") for b in cluster.sent[-2:]] == [0, 3]  # the suggestion, the page (+1 hit for a tie)
