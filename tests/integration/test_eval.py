"""``eshybrid load`` and ``eshybrid eval`` on a tiny BEIR folder made in tmp_path, on the real servers."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from connector import connect
from connector.cli import main
from connector.quality.evaluation import evaluate_search, tune_fusion
from connector.quality.load import load_corpus, read_beir
from connector.search import HybridSearch
from mappings import TextField, VectorField, build_index_body
from tests.integration.test_hybrid_search import TableEmbedder

pytestmark = [pytest.mark.integration]

DOCS = [
    ("p1", "red waterproof tent", "a tent for rain", [1.0, 0.0, 0.0], "acme"),
    ("p2", "blue camping chair", "folding chair", [0.0, 1.0, 0.0], "acme"),
    ("p3", "storm shelter", "keeps you dry in a downpour", [0.95, 0.05, 0.0], "zeta"),
    ("p4", "steel camping stove", "cook outdoors", [0.0, 0.0, 1.0], "zeta"),
    ("p5", "tent pegs", "steel pegs for a tent", [0.3, 0.0, 0.7], "acme"),
    ("p6", "rain poncho", "waterproof poncho", [0.8, 0.2, 0.1], "zeta"),
]
QUERIES = {
    "q1": ("waterproof tent", [1.0, 0.02, 0.0]),
    "q2": ("folding chair", [0.0, 1.0, 0.05]),
    "q3": ("stove", [0.05, 0.0, 1.0]),
    "q4": ("shelter from rain", [0.9, 0.1, 0.0]),
}
QRELS = [
    ("q1", "p1", 3),
    ("q1", "p3", 2),
    ("q1", "p6", 1),
    ("q1", "p4", 0),
    ("q2", "p2", 3),
    ("q3", "p4", 3),
    ("q4", "p3", 3),
    ("q4", "p6", 2),
    ("q4", "p1", 1),
]


def write_beir(root: Path) -> Path:
    (root / "qrels").mkdir(parents=True)
    rows = [{"_id": i, "title": t, "text": x, "brand": b} for i, t, x, _, b in DOCS]
    (root / "corpus.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (root / "queries.jsonl").write_text(
        "".join(json.dumps({"_id": q, "text": t}) + "\n" for q, (t, _) in QUERIES.items())
    )
    (root / "qrels" / "test.tsv").write_text(
        "query-id\tcorpus-id\tscore\n" + "".join(f"{q}\t{d}\t{g}\n" for q, d, g in QRELS)
    )
    return root


def cli_json(capsys: pytest.CaptureFixture[str], *args: str) -> Any:
    capsys.readouterr()
    assert main(list(args)) == 0
    return json.loads(capsys.readouterr().out)


def test_load_then_eval_bm25_from_the_cli(
    cluster_url: str, index_name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dataset = write_beir(tmp_path / "beir")
    capsys.readouterr()
    assert (
        main(["load", "--dataset", str(dataset), "--index", index_name, "--url", cluster_url, "--chunk-size", "4"]) == 0
    )
    assert "loaded 6 documents" in capsys.readouterr().out
    with connect(cluster_url) as cluster:
        assert cluster.count(index_name) == 6
        assert cluster.search(index_name, {"query": {"term": {"brand.keyword": "zeta"}}})["hits"]["hits"]
    assert main(["load", "--dataset", str(dataset), "--index", index_name, "--url", cluster_url]) == 2  # exists

    figures = cli_json(
        capsys,
        "eval",
        "--index",
        index_name,
        "--dataset",
        str(dataset),
        "--modes",
        "bm25",
        "--url",
        cluster_url,
        "--json",
    )
    assert set(figures["bm25"]) == {"ndcg@10", "recall@100", "mrr@10"}
    assert 0 < figures["bm25"]["ndcg@10"] <= 1 and figures["queries"] == 4
    # --qrels / --queries override the folder's own files
    (tmp_path / "one.tsv").write_text("q2\tp2\t3\n")
    (tmp_path / "one.jsonl").write_text(json.dumps({"_id": "q2", "text": "folding chair"}) + "\n")
    one = cli_json(
        capsys,
        "eval",
        "--index",
        index_name,
        "--dataset",
        str(dataset),
        "--modes",
        "bm25",
        "--qrels",
        str(tmp_path / "one.tsv"),
        "--queries",
        str(tmp_path / "one.jsonl"),
        "--url",
        cluster_url,
        "--json",
    )
    assert one["queries"] == 1 and one["bm25"]["ndcg@10"] == pytest.approx(1.0)


def test_eval_all_modes_and_tune(cluster_url: str, index_name: str, tmp_path: Path) -> None:
    dataset = read_beir(write_beir(tmp_path / "beir"))
    with connect(cluster_url) as cluster:
        body = build_index_body(
            cluster.capabilities,
            text_fields=[TextField("title"), TextField("text")],
            vector_fields=[VectorField(dims=3, model_id="test/hand-made")],
            number_of_shards=1,
            number_of_replicas=0,
        )
        report = load_corpus(
            cluster, index_name, dataset.corpus_path, index_body=body, chunk_size=2, vectors={d[0]: d[3] for d in DOCS}
        )
        assert report.docs == 6 and report.failed == 0 and report.chunks == 3
        embedder = TableEmbedder({text: vector for text, vector in QUERIES.values()})
        search = HybridSearch(cluster, index_name, embedder=embedder, max_depth=100)
        result = evaluate_search(search, dataset.queries, dataset.qrels, modes=("bm25", "knn", "hybrid"))
        assert set(result.metrics) == {"bm25", "knn", "hybrid"}
        assert result.metrics["knn"]["recall@100"] == pytest.approx(1.0)  # every doc has a vector
        assert result.metrics["bm25"]["recall@100"] < 1.0  # "shelter from rain" misses p1 lexically
        assert [(c.a, c.b) for c in result.comparisons] == [("bm25", "knn"), ("bm25", "hybrid"), ("knn", "hybrid")]
        legs = {q: search.retrieve_legs(text) for q, (text, _) in QUERIES.items()}
    tuned = tune_fusion(legs, dataset.qrels, train_fraction=0.5, seed=1)
    assert len(tuned.train_queries) == 2 and len(tuned.test_queries) == 2
    assert set(tuned.test.metrics) >= {"bm25", "knn"}
