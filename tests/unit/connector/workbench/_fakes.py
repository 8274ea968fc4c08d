"""In-memory stand-ins for the workbench's unit tests: a search that answers fixed hits, a judgments store."""

from __future__ import annotations

from typing import Any

from connector.search.models import HitExplanation, LegExplanation, SearchHit, SearchResponse, SearchTimings
from connector.workbench.store import QueryGrades, check_judgment, query_key

HOSTILE = '<script>alert(1)</script>"><img src=x onerror=alert(2)>'


def response(
    query: str, ids: list[str], *, mode: str = "hybrid", titles: dict[str, str] | None = None
) -> SearchResponse:
    hits = []
    for rank, doc in enumerate(ids, start=1):
        lexical = LegExplanation(
            raw_score=10.0 / rank, rank=rank, normalized=1 / rank, weight=0.7, contribution=0.7 / rank
        )
        vector = LegExplanation(raw_score=0.9, rank=rank, normalized=0.5, weight=0.3, contribution=0.15)
        explanation = HitExplanation(
            mode=mode, strategy="client", fusion="linear", lexical=lexical, vector=vector, fused_score=0.7 / rank + 0.15
        )
        source = {"title": (titles or {}).get(doc, f"product {doc}"), "image": "javascript:alert(3)"}
        hits.append(
            SearchHit(
                id=doc, index="shop", rank=rank, score=explanation.fused_score, source=source, explanation=explanation
            )
        )
    return SearchResponse(
        index="shop",
        query=query,
        mode=mode,
        strategy="client",
        page=1,
        size=10,
        max_depth=100,
        hits=hits,
        timings=SearchTimings(correct_ms=1.0, embed_ms=2.0, search_ms=3.0, fuse_ms=0.5, total_ms=7.0),
    )


class FakeSearch:
    """Answers ``ids`` for every query; records the options each call had."""

    def __init__(self, ids: list[str], titles: dict[str, str] | None = None) -> None:
        self.ids = ids
        self.titles = titles
        self.calls: list[dict[str, Any]] = []

    def search(self, text: str, **options: Any) -> SearchResponse:
        self.calls.append({"text": text, **options})
        mode = options.get("mode", "hybrid")
        ids = list(reversed(self.ids)) if mode == "bm25" else self.ids
        return response(text, ids, mode=mode, titles=self.titles)


class FakeStore:
    """The judgments store's interface, in memory."""

    def __init__(self) -> None:
        self.rows: dict[tuple[str, str, str], int] = {}

    def rate(self, query: str, doc: str, grade: int, *, rater: str, config: Any = None) -> QueryGrades:
        self.rows[(check_judgment(query, doc, grade, rater=rater), doc, rater)] = grade
        return self.grades(query)

    def grades(self, query: str) -> QueryGrades:
        by_rater: dict[str, dict[str, int]] = {}
        for (q, doc, rater), grade in self.rows.items():
            if q == query_key(query):
                by_rater.setdefault(doc, {})[rater] = grade
        return QueryGrades(by_rater)
