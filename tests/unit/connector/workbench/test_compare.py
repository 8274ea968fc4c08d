"""Moves between the lists, score parts, timing bars, the grade rule and nDCG (as eval computes it)."""

from __future__ import annotations

import pytest

from connector.quality.evaluation import evaluate_runs, ranking_to_run
from connector.search.models import SearchTimings
from connector.workbench.compare import Move, aggregate_grade, disagreements, moves, ndcg_at, score_parts, timing_bars
from tests.unit.connector.workbench._fakes import response


def test_moves_mark_up_down_same_and_only_here() -> None:
    marks = moves(["a", "b", "c", "d"], ["b", "a", "c", "x"])
    assert marks == {  # "up": this list ranks it higher than the other one does
        "a": Move("up", 1, 2),
        "b": Move("down", 1, 1),
        "c": Move("same", 0, 3),
        "d": Move("only"),
    }


def test_score_parts_list_each_signal() -> None:
    hit = response("q", ["d1"]).hits[0]
    parts = score_parts(hit.explanation)
    assert [p.signal for p in parts] == ["lexical", "vector"]
    assert sum(p.contribution for p in parts) == pytest.approx(hit.explanation.fused_score)  # type: ignore[union-attr]
    assert score_parts(None) == []


def test_timing_bars_overlap_in_the_first_trip_then_follow_each_other() -> None:
    timings = SearchTimings(correct_ms=1.0, embed_ms=2.0, search_ms=3.0, fetch_ms=1.0, rerank_ms=0.0, total_ms=6.0)
    assert [(b.stage, b.start_ms, b.ms) for b in timing_bars(timings)] == [
        ("correct", 0.0, 1.0),
        ("embed", 0.0, 2.0),
        ("search", 2.0, 3.0),
        ("fetch", 5.0, 1.0),
    ]


def test_the_grade_of_several_raters_is_the_lower_median() -> None:
    assert aggregate_grade([3]) == 3
    assert aggregate_grade([0, 3]) == 0
    assert aggregate_grade([1, 2, 3]) == 2
    assert aggregate_grade([3, 2, 2, 0]) == 2
    assert disagreements({"d1": {"a": 1, "b": 1}, "d2": {"a": 0, "b": 3}}) == {"d2": {"a": 0, "b": 3}}


def test_ndcg_matches_eval() -> None:
    grades = {"d1": 3, "d3": 1, "d9": 2, "d7": 0}
    ranking = ["d3", "d1", "d5", "d7", "d9"]
    expected = evaluate_runs({"q": grades}, {"run": {"q": ranking_to_run(ranking)}}).metrics["run"]["ndcg@10"]
    assert ndcg_at(ranking, grades) == pytest.approx(expected, abs=1e-9)
    assert ndcg_at(ranking, {"d1": 0}) is None
