"""Evaluation harness without a cluster: BEIR reading, metrics (ranx), comparisons, tuning."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from connector.errors import ConfigError
from connector.quality.evaluation import (
    default_grid,
    evaluate_runs,
    ranking_to_run,
    split_queries,
    tune_fusion,
)
from connector.quality.load import iter_corpus, read_beir, read_qrels, read_queries
from connector.search.fusion import LegHit, fuse
from connector.search.models import DEFAULT_FUSION, FusionConfig


def write_beir(root: Path) -> Path:
    (root / "qrels").mkdir(parents=True)
    corpus = [
        {"_id": "d1", "title": "red tent", "text": "waterproof", "brand": "acme"},
        {"_id": 2, "text": "blue chair"},
    ]
    (root / "corpus.jsonl").write_text("\n".join(json.dumps(d) for d in corpus) + "\n")
    (root / "queries.jsonl").write_text('{"_id": "q1", "text": "tent"}\n{"_id": "q2", "text": "chair"}\n\n')
    (root / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td1\t3\nq1\t2\t0\nq2\t2\t1\n")
    return root


def test_read_beir(tmp_path: Path) -> None:
    root = write_beir(tmp_path / "ds")
    data = read_beir(root)
    assert data.queries == {"q1": "tent", "q2": "chair"}
    assert data.qrels == {"q1": {"d1": 3, "2": 0}, "q2": {"2": 1}}
    docs = list(iter_corpus(root))
    assert docs[1] == {"_id": "2", "text": "blue chair", "title": ""} and docs[0]["brand"] == "acme"
    (tmp_path / "other.tsv").write_text("q9\td1\t2\n")  # no header
    assert read_qrels(tmp_path / "other.tsv") == {"q9": {"d1": 2}}
    assert read_beir(root, qrels=tmp_path / "other.tsv").qrels == {"q9": {"d1": 2}}
    assert data.judged_queries() == {"q1": "tent", "q2": "chair"}
    with pytest.raises(ConfigError):
        read_queries(tmp_path / "missing.jsonl")


def test_ranking_to_run_keeps_order() -> None:
    run = ranking_to_run(["c", "a", "b"])
    assert sorted(run, key=lambda d: -run[d]) == ["c", "a", "b"]


QRELS = {"q1": {"a": 3, "b": 1, "x": 0}, "q2": {"c": 2}, "q3": {"z": 0}}


def test_evaluate_runs_hand_computed() -> None:
    runs = {
        "good": {"q1": ranking_to_run(["a", "b"]), "q2": ranking_to_run(["c"])},
        "bad": {"q1": ranking_to_run(["x", "b", "a"]), "q2": {}},
    }
    report = evaluate_runs(QRELS, runs)
    assert report.queries == 2 and report.skipped_queries == 1  # q3 has no relevant doc
    assert report.metrics["good"] == pytest.approx({"ndcg@10": 1.0, "recall@100": 1.0, "mrr@10": 1.0})
    ideal = 3 + 1 / math.log2(3)
    got = 1 / math.log2(3) + 3 / math.log2(4)
    assert report.per_query["bad"]["ndcg@10"]["q1"] == pytest.approx(got / ideal)
    assert report.per_query["bad"]["ndcg@10"]["q2"] == 0.0
    assert report.metrics["bad"]["mrr@10"] == pytest.approx((1 / 2 + 0) / 2)
    (comparison,) = report.comparisons
    assert (comparison.a, comparison.b, comparison.metric) == ("good", "bad", "ndcg@10")
    assert comparison.losses == 2 and comparison.wins == 0 and comparison.mean_diff < 0
    assert comparison.per_query["q2"] == -1.0
    out = report.to_json(per_query=True)
    assert set(out["good"]) == {"ndcg@10", "recall@100", "mrr@10"}
    assert out["comparisons"][0]["per_query"]["q2"] == -1.0
    assert "good" in report.format_table()


def test_no_relevant_judgment_is_an_error() -> None:
    with pytest.raises(ConfigError):
        evaluate_runs({"q": {"a": 0}}, {"m": {"q": {"a": 1.0}}})


def test_split_is_seeded_and_disjoint() -> None:
    qids = [f"q{i}" for i in range(20)]
    train, test = split_queries(qids, train_fraction=0.5, seed=3)
    assert (train, test) == split_queries(list(reversed(qids)), train_fraction=0.5, seed=3)
    assert len(train) == 10 and not set(train) & set(test) and set(train) | set(test) == set(qids)
    assert split_queries(qids, train_fraction=0.5, seed=4) != (train, test)
    with pytest.raises(ConfigError):
        split_queries(qids, train_fraction=1.0, seed=3)


def test_default_grid_starts_with_the_default_and_has_no_duplicates() -> None:
    grid = default_grid()
    assert grid[0] == DEFAULT_FUSION
    labels = [c.describe() for c in grid]
    assert len(labels) == len(set(labels))
    assert {c.method for c in grid} == {"adaptive", "rrf", "linear"} and {c.normalizer for c in grid} >= {
        "min_max",
        "z_score",
        "l2",
    }


def test_tune_prefers_the_leg_that_knows() -> None:
    """The lexical leg ranks the relevant doc first, the vector leg misses it: tuning must lean lexical.

    Plain RRF with equal weights puts d1 (lexical 2, vector 7) above d0 (lexical 1 only); the
    library default (adaptive min-max, base 0.7/0.3; without word counts its base weights) already
    leans lexical and gets it right.
    """
    legs: dict[str, dict[str, list[LegHit]]] = {}
    qrels: dict[str, dict[str, int]] = {}
    for i in range(30):
        docs = [f"q{i}-d{j}" for j in range(8)]
        legs[f"q{i}"] = {
            "lexical": [LegHit(d, 10.0 - j) for j, d in enumerate(docs)],
            "vector": [LegHit(d, 0.9 - 0.01 * j) for j, d in enumerate(reversed(docs[1:]))],
        }
        qrels[f"q{i}"] = {docs[0]: 2}
    report = tune_fusion(legs, qrels, seed=1)
    assert report.best.lexical_weight >= report.best.vector_weight
    assert len(report.train_queries) == len(report.test_queries) == 15
    test = report.test.metrics
    assert test["bm25"]["ndcg@10"] == pytest.approx(1.0)
    assert test[f"tuned {report.best.describe()}"]["ndcg@10"] == pytest.approx(1.0)
    assert test[f"default {DEFAULT_FUSION.describe()}"]["ndcg@10"] == pytest.approx(1.0)
    rrf = {q: fuse(legs[q], FusionConfig()) for q in report.test_queries}
    assert not any(ranking[0].id.endswith("-d0") for ranking in rrf.values())
    assert report.to_json()["best_label"] == report.best.describe()
