"""The adapters' shared part (no framework, no network): options and the hits' text and metadata."""

from __future__ import annotations

import pytest

from connector.adapters import SearchOptions, adapter_hits
from connector.errors import ConfigError
from connector.search.models import HitExplanation, SearchHit, SearchResponse


def _response() -> SearchResponse:
    hit = SearchHit(
        id="d1",
        index="products",
        rank=1,
        score=0.9,
        source={"title": "red tent", "text": "sturdy", "price": 10},
        explanation=HitExplanation(mode="hybrid", strategy="client", fused_score=0.9),
    )
    return SearchResponse(
        index="products", query="tent", mode="hybrid", strategy="client", page=1, size=10, max_depth=100,
        hits=[hit], rerank_fallback=True, rerank_fallback_reason="reranker timed out",
    )  # fmt: skip


def test_options_pass_the_framework_s_page_size_and_add_filters() -> None:
    options = SearchOptions(top_k=5, search_kwargs={"mode": "bm25", "filters": [{"term": {"a": 1}}]})
    assert options.call_options(None, [{"term": {"b": 2}}]) == {
        "explain": True, "mode": "bm25", "size": 5, "filters": [{"term": {"a": 1}}, {"term": {"b": 2}}]
    }  # fmt: skip
    assert options.call_options(3)["size"] == 3
    with pytest.raises(ConfigError, match="top_k"):
        SearchOptions(search_kwargs={"size": 3})
    with pytest.raises(ConfigError, match="top_k must be"):
        SearchOptions(top_k=0)


def test_hits_carry_text_score_explain_and_flags() -> None:
    (hit,) = adapter_hits(_response(), SearchOptions(template="{title}: {text}"))
    assert (hit.id, hit.text, hit.score) == ("d1", "red tent: sturdy", 0.9)
    meta = hit.metadata
    assert meta["rerank_fallback"] is True and meta["rerank_fallback_reason"] == "reranker timed out"
    assert meta["reranked"] is False and meta["explanation"]["fused_score"] == 0.9
    assert meta["source"]["price"] == 10
    (default,) = adapter_hits(_response(), SearchOptions())
    assert default.text == "red tent\nsturdy"  # every string field of _source
