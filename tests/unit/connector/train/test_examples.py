"""The pure training-example builders, the split, the interleaving and the model card (golden JSON)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from connector.errors import ConfigError
from connector.quality.load import BeirDataset
from connector.train import (
    embedder_triplets,
    interleave,
    read_card,
    render_card,
    shuffled_qrels,
    split_for_training,
    write_card,
)
from tests.unit._golden import GoldenFiles

GOLDEN = GoldenFiles(prefix="train_")

# q1: two Exact, a Substitute, a judged Irrelevant; q2: only a Substitute; q3: judged but never retrieved.
QRELS = {
    "q1": {"e1": 3, "e2": 3, "s1": 2, "i1": 0},
    "q2": {"s2": 2, "c2": 1},
    "q3": {"e3": 3},
}
CANDIDATES = {
    "q1": ["s1", "x1", "e1", "i1", "x2"],
    "q2": ["c2", "x3", "s2"],
    "q3": [],
}


def test_triplets_push_an_exact_above_a_substitute_above_the_rest() -> None:
    triplets = embedder_triplets(["q1", "q2", "q3"], QRELS, CANDIDATES)
    GOLDEN.check("embedder_triplets", [dataclasses.asdict(t) for t in triplets])
    assert all(t.positive_grade > t.negative_grade for t in triplets)
    # The two Exact of q1 take different negatives (the first two lower-graded candidates, best rank first).
    assert [(t.positive_id, t.negative_id) for t in triplets if t.query_id == "q1"][:2] == [("e1", "s1"), ("e2", "x1")]
    assert not [t for t in triplets if t.query_id == "q3"]  # nothing mined: no negative


def test_triplets_cap_and_grade_threshold() -> None:
    assert len(embedder_triplets(["q1"], QRELS, CANDIDATES, max_positives_per_query=1)) == 1
    only_exact = embedder_triplets(["q1", "q2"], QRELS, CANDIDATES, min_positive_grade=3)
    assert {t.positive_id for t in only_exact} == {"e1", "e2"}
    with pytest.raises(ConfigError):
        embedder_triplets(["q1"], QRELS, CANDIDATES, max_positives_per_query=0)


def test_shuffled_qrels_keep_the_grades_and_lose_the_documents() -> None:
    shuffled = shuffled_qrels(QRELS, seed=1)
    assert shuffled == shuffled_qrels(QRELS, seed=1)
    assert {q: sorted(g.values()) for q, g in shuffled.items()} == {q: sorted(g.values()) for q, g in QRELS.items()}
    assert shuffled != {q: dict(g) for q, g in QRELS.items()}


def test_interleave_takes_each_leg_in_turn() -> None:
    assert interleave(["a", "b", "c"], ["b", "d"]) == ["a", "b", "d", "c"]
    assert interleave() == []


def test_split_is_seeded_and_keeps_only_judged_queries(tmp_path: Path) -> None:
    qrels = {f"q{i}": {"d": 1 if i != 9 else 0} for i in range(10)}
    dataset = BeirDataset(tmp_path, {q: q for q in qrels}, qrels)
    split = split_for_training(dataset, train_fraction=0.7, seed=13)
    assert split == split_for_training(dataset, train_fraction=0.7, seed=13)
    assert sorted(split.train + split.heldout) == sorted(q for q in qrels if q != "q9")
    assert not set(split.train) & set(split.heldout)
    assert len(split.train) == 6
    with pytest.raises(ConfigError, match="at least 4"):
        split_for_training(BeirDataset(tmp_path, {"q1": "x"}, {"q1": {"d": 1}}))


CARD = {
    "kind": "embedder",
    "name": "shop-minilm",
    "base": "/models/all-MiniLM-L6-v2",
    "data": {"name": "esci-us-subset", "date": "2026-12-06", "train_queries": 72, "heldout_queries": 31, "seed": 13},
    "split": {"seed": 13, "train_fraction": 0.7, "train_queries": ["q1"], "heldout_queries": ["q2"]},
    "parameters": {"epochs": 3, "learning_rate": 5e-05},
    "fit": {"seconds": 61.5, "steps": 48, "examples": 512},
    "heldout": {"pool_ndcg@10_base": 0.61234, "pool_ndcg@10_tuned": 0.65, "queries": 31},
    "layers": {"kept": [0, 2, 4], "teacher": 6},
    "speed": {"base_docs_per_s": 100.0, "student_docs_per_s": 190.0, "speedup": 1.9, "backend": "torch"},
}


def test_model_card(tmp_path: Path) -> None:
    text = render_card(CARD)
    GOLDEN.check("model_card", text.splitlines())
    assert read_card(tmp_path) is None
    write_card(tmp_path, CARD)
    assert read_card(tmp_path) == CARD
    assert (tmp_path / "README.md").read_text() == text
