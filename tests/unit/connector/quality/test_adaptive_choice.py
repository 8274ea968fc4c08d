"""The adaptive fusion's selection rule: the worst margin over the better leg, ties to the higher mean."""

from __future__ import annotations

import json
from pathlib import Path

from connector.quality.adaptive_choice import (
    QuerySet,
    adaptive_candidates,
    choose_adaptive,
    compare_adaptive,
    read_query_kinds,
)
from connector.search.adaptive import QueryEvidence
from connector.search.fusion import LegHit


def test_the_largest_worst_margin_wins() -> None:
    better = {"esci": 0.70, "desc": 0.90}
    scores = {
        "a": {"esci": 0.73, "desc": 0.80},  # great on keywords, loses 0.10 on descriptive queries
        "b": {"esci": 0.72, "desc": 0.895},  # worst margin -0.005
        "c": {"esci": 0.71, "desc": 0.899},  # worst margin -0.001
    }
    chosen, margins = choose_adaptive(scores, better)
    assert chosen == "c" and round(margins["a"], 6) == -0.1


def test_ties_go_to_the_higher_mean_then_the_earlier() -> None:
    better = {"x": 0.5}
    assert choose_adaptive({"a": {"x": 0.6}, "b": {"x": 0.601}}, better)[0] == "b"
    assert choose_adaptive({"a": {"x": 0.6}, "b": {"x": 0.6}}, better)[0] == "a"


def test_compare_adaptive_scores_every_candidate_on_the_same_legs() -> None:
    legs = {
        "q1": {
            "lexical": [LegHit("dumbbells", 4.0), LegHit("lamp", 1.0)],
            "vector": [LegHit("lamp", 0.8), LegHit("dumbbells", 0.5)],
        }
    }
    evidence = {"q1": QueryEvidence("flashlight head", doc_freqs={"flashlight": 0, "head": 0})}
    sets = {"desc": QuerySet(legs, evidence, {"q1": {"lamp": 2}}, bm25=0.63, knn=1.0)}
    comparison = compare_adaptive(sets, candidates=adaptive_candidates()[:2])
    assert all(row["desc"] == 1.0 for row in comparison.scores.values())  # coverage 0: the vector leg alone
    assert comparison.chosen == adaptive_candidates()[0].name and "<- chosen" in comparison.format_table()


def test_query_kinds_from_the_catalogue(tmp_path: Path) -> None:
    path = tmp_path / "queries.jsonl"
    rows = [{"_id": "q1", "text": "tent", "metadata": {"kind": "descriptive"}}, {"_id": "q2", "text": "x"}]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    assert read_query_kinds(path) == {"q1": "descriptive", "q2": "keyword"}
    repo = Path(__file__).resolve().parents[4]
    kinds = read_query_kinds(repo / "examples" / "catalogue" / "queries.jsonl")
    assert sum(k == "descriptive" for k in kinds.values()) == 17 and len(kinds) == 30
