"""Models that learn the shop (issue 27): fine-tuned embedder, trained cross-encoder, half-depth student.

On ``../shared/data/esci-us-subset`` only, seeded, against Elasticsearch 9 ($ESHYBRID_TEST_ES9_URL):

1. split the judged queries (seed 13: 70% trained on, 30% held out; ``connector.train.split_for_training``);
2. load the corpus into an index with the base model's vectors (all-MiniLM-L6-v2, in this process, cached);
3. ``train_embedder`` (hard negatives mined from that index) -> a second index with the tuned vectors;
   ``knn`` and the default ``hybrid`` nDCG@10 of both indices on the held-out queries (``knn_base``,
   ``knn_tuned``, ``hybrid_base``, ``hybrid_tuned``);
4. ``train_reranker`` (hybrid top-50 window) -> ``hybrid+rerank`` vs ``hybrid`` on the base index, held-out
   queries (``rerank_gain``), and the reranker's p50 over those queries' top 50 at 2 threads, torch backend,
   the serving code (``rerank.load_in_process``) (``rerank_top50_p50_ms``);
5. ``train_embedder --layers 3`` (half of 6) -> its knn nDCG@10 (``student_knn``) and docs/s over the same 512
   corpus texts as the base, same backend (torch), interleaved, best of 2 rounds (``student_speedup``).

Rules fixed before the first run (no number below was tuned on the held-out queries):
- hyperparameters are not searched: the trainer's defaults (lr 5e-5, linear decay, 10% warm-up), batch 32,
  128 tokens while training; epochs and example counts are set so that the whole run fits 30 min on an idle
  2-core machine, estimated from this README's idle figures (torch MiniLM-L6 ~20 docs/s forward at 128 tokens,
  a training step ~3x a forward; the corpus embedded once per model, ~340 s each): embedder 2 epochs over <= 8
  graded triplets per training query; reranker 1 epoch over <= 32 pairs per query; student distilled 1 epoch on
  1,000 corpus texts, then fine-tuned like the embedder (about 30 min in all; sizes fixed before any figure).
- every corpus text is embedded at 128 tokens for every model (base included), so the figures compare models,
  not lengths (the served models keep the base's 256).
- nothing is chosen on the held-out queries; the held-out figures are printed once.

Speed figures are only comparable within one run (ratios); the load average is printed before and after.
Ends with one ``RESULT`` line.

    .venv/bin/python bench/train.py [--dataset ../shared/data/esci-us-subset] [--queries N]
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402

from connector import connect  # noqa: E402
from connector.quality.evaluation import evaluate_search  # noqa: E402
from connector.quality.load import BeirDataset, load_corpus, plain_index_body, read_beir  # noqa: E402
from connector.search import HybridSearch  # noqa: E402
from connector.search.rerank import RerankConfig  # noqa: E402
from connector.train import fit  # noqa: E402
from connector.train.commands import default_base, docs_per_second, train_embedder, train_reranker  # noqa: E402
from connector.train.data import corpus_texts, split_for_training  # noqa: E402
from mappings import VectorField  # noqa: E402

logger = logging.getLogger("bench.train")

_SHARED = REPO.parent / "shared"
DEFAULT_DATASET = (_SHARED if _SHARED.is_dir() else Path("/work/shared")) / "data" / "esci-us-subset"
CACHE_DIR = Path(os.environ.get("ESHYBRID_BENCH_CACHE", Path.home() / ".cache" / "eshybrid" / "bench"))
TEMPLATE = "{title}\n{text}"
MAX_LENGTH = 128
SEED = 13
THREADS = 2
STARTED = time.perf_counter()


def note(message: str) -> None:
    print(f"# [{time.perf_counter() - STARTED:7.1f}s] {message}", flush=True)


def load_average() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def corpus_matrix(model_dir: Path, ids: list[str], texts: list[str], *, cache: bool) -> np.ndarray:
    """The corpus vectors of a model folder at MAX_LENGTH tokens (cached for the base only)."""
    key = hashlib.sha256(f"{model_dir}|{MAX_LENGTH}|{len(ids)}|{ids[0]}|{ids[-1]}".encode()).hexdigest()[:24]
    path = CACHE_DIR / f"train-{key}.npy"
    if cache and path.exists():
        note(f"corpus vectors: cache hit {path}")
        return np.load(path)
    started = time.perf_counter()
    matrix = fit.encode(fit.load_embedder(model_dir, max_length=MAX_LENGTH), texts)
    note(f"embedded {len(texts)} docs with {model_dir.name} in {time.perf_counter() - started:.0f}s")
    if cache:
        CACHE_DIR.mkdir(parents=True, exist_ok=True)
        np.save(path, matrix)
    return np.asarray(matrix)


def load_index(cluster: Any, dataset: BeirDataset, ids: list[str], matrix: np.ndarray, *, label: str) -> str:
    index = f"eshybrid-bench-train-{label}-{uuid.uuid4().hex[:8]}"
    vector = VectorField(dims=int(matrix.shape[1]), model_id=label, source_fields=("title", "text"), template=TEMPLATE)
    body = plain_index_body(cluster.capabilities, analyzer="standard", vector_fields=[vector])
    vectors = {doc: row.tolist() for doc, row in zip(ids, matrix)}
    load_corpus(cluster, index, dataset.corpus_path, index_body=body, vectors=vectors, chunk_size=250)
    return index


def scores(
    search: HybridSearch, queries: dict[str, str], dataset: BeirDataset, modes: tuple[str, ...]
) -> dict[str, float]:
    report = evaluate_search(search, queries, dataset.qrels, modes=modes, depth=100)
    return {mode: round(report.metrics[mode]["ndcg@10"], 4) for mode in modes}


def rerank_p50_ms(reranker: Any, search: HybridSearch, queries: dict[str, str], texts: dict[str, str]) -> float:
    timings = []
    for text in queries.values():
        ids = search.search(text, size=50, source=False).ids
        docs = [texts.get(d, "") for d in ids]
        reranker.score(text, docs[:1])  # warm
        started = time.perf_counter()
        reranker.score(text, docs)
        timings.append((time.perf_counter() - started) * 1000)
    return round(statistics.median(timings), 1)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", type=Path, default=DEFAULT_DATASET)
    parser.add_argument("--es9-url", default=os.environ.get("ESHYBRID_TEST_ES9_URL"))
    parser.add_argument("--queries", type=int, default=0, help="smoke run: only this many held-out queries")
    parser.add_argument("--epochs", type=float, default=2.0, help="embedder epochs (rule: 2)")
    parser.add_argument("--max-positives", type=int, default=8)
    parser.add_argument("--max-pairs", type=int, default=32)
    parser.add_argument("--distil-texts", type=int, default=1000)
    parser.add_argument("--layers", type=int, default=3)
    parser.add_argument("--corpus-limit", type=int, default=0, help="smoke run: embed only the first N docs")
    args = parser.parse_args()
    if not args.es9_url:
        parser.error("give --es9-url or set ESHYBRID_TEST_ES9_URL")
    logging.basicConfig(level=logging.WARNING)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    fit.seed_everything(SEED, THREADS)
    print(f"# load average before: {load_average()} ({os.cpu_count()} cpus)", flush=True)
    dataset = read_beir(args.dataset)
    split = split_for_training(dataset, train_fraction=0.7, seed=SEED)
    heldout = {q: dataset.queries[q] for q in split.heldout}
    if args.queries:
        heldout = dict(list(heldout.items())[: args.queries])
    note(f"{len(split.train)} training queries, {len(heldout)} held-out queries (seed {SEED})")
    texts = corpus_texts(dataset.corpus_path)
    if args.corpus_limit:
        texts = dict(list(texts.items())[: args.corpus_limit])
    ids = list(texts)
    base = default_base()
    cluster = connect(args.es9_url)
    indices: list[str] = []
    results: dict[str, Any] = {}
    try:
        base_index = load_index(
            cluster, dataset, ids, corpus_matrix(base, ids, list(texts.values()), cache=True), label="base"
        )
        indices.append(base_index)
        base_embedder = fit.LocalEmbedder(fit.load_embedder(base, max_length=MAX_LENGTH))
        base_search = HybridSearch(cluster, base_index, embedder=base_embedder, max_depth=100, embed_budget_s=None)
        base_scores = scores(base_search, heldout, dataset, ("knn", "hybrid"))
        note(f"base held-out: {base_scores}")
        with tempfile.TemporaryDirectory(prefix="eshybrid-bench-train-") as tmp:
            settings = fit.FitSettings(epochs=args.epochs, max_length=MAX_LENGTH, seed=SEED, threads=THREADS)
            tuned = train_embedder(
                base_search, dataset, out=Path(tmp) / "tuned", settings=settings,
                max_positives_per_query=args.max_positives, score_heldout=False,
            )  # fmt: skip
            results["train_embedder_s"] = tuned.card["fit"]["seconds"]
            note(f"embedder trained: {tuned.card['fit']}")
            tuned_index = load_index(
                cluster, dataset, ids, corpus_matrix(tuned.out, ids, list(texts.values()), cache=False), label="tuned"
            )
            indices.append(tuned_index)
            tuned_embedder = fit.LocalEmbedder(fit.load_embedder(tuned.out, max_length=MAX_LENGTH))
            tuned_search = HybridSearch(
                cluster, tuned_index, embedder=tuned_embedder, max_depth=100, embed_budget_s=None
            )
            tuned_scores = scores(tuned_search, heldout, dataset, ("knn", "hybrid"))
            note(f"tuned held-out: {tuned_scores}")

            rr_settings = fit.FitSettings(epochs=1, max_length=MAX_LENGTH, seed=SEED, threads=THREADS)
            reranker_report = train_reranker(
                base_search, dataset, out=Path(tmp) / "reranker", settings=rr_settings,
                max_pairs_per_query=args.max_pairs, score_heldout=False,
            )  # fmt: skip
            results["train_reranker_s"] = reranker_report.card["fit"]["seconds"]
            note(f"reranker trained: {reranker_report.card['fit']}")
            import rerank

            reranker = rerank.load_in_process(str(reranker_report.out), device="cpu", torch_threads=THREADS)
            config = RerankConfig(reranker=reranker, top_k=50, template=TEMPLATE, timeout_s=600)
            rerank_search = HybridSearch(
                cluster, base_index, embedder=base_embedder, max_depth=100, rerank=config, embed_budget_s=None
            )
            reranked = scores(rerank_search, heldout, dataset, ("hybrid", "hybrid+rerank"))
            note(f"rerank held-out: {reranked}")
            results["rerank_top50_p50_ms"] = rerank_p50_ms(reranker, base_search, heldout, texts)

            student = train_embedder(
                base_search, dataset, out=Path(tmp) / "student", settings=settings, layers=args.layers,
                max_positives_per_query=args.max_positives, distil_texts=args.distil_texts, score_heldout=False,
            )  # fmt: skip
            note(f"student trained: {student.card['fit']} distil {student.card.get('distil')}")
            student_index = load_index(
                cluster,
                dataset,
                ids,
                corpus_matrix(student.out, ids, list(texts.values()), cache=False),
                label="student",
            )
            indices.append(student_index)
            student_model = fit.load_embedder(student.out, max_length=MAX_LENGTH)
            student_search = HybridSearch(
                cluster, student_index, embedder=fit.LocalEmbedder(student_model), max_depth=100, embed_budget_s=None
            )
            student_scores = scores(student_search, heldout, dataset, ("knn",))
            sample = list(texts.values())[:512]
            # Interleaved, best of 2 rounds each: the machine is shared, the ratio is what is compared.
            rounds = [
                (docs_per_second(base_embedder.model, sample), docs_per_second(student_model, sample)) for _ in "ab"
            ]
            base_speed, student_speed = max(r[0] for r in rounds), max(r[1] for r in rounds)
            note(f"student held-out: {student_scores}; docs/s base {base_speed} student {student_speed}")
    finally:
        for index in indices:
            cluster.request("DELETE", f"/{index}")
    results.update(
        knn_base=base_scores["knn"],
        knn_tuned=tuned_scores["knn"],
        hybrid_base=base_scores["hybrid"],
        hybrid_tuned=tuned_scores["hybrid"],
        rerank_gain=round(reranked["hybrid+rerank"] - reranked["hybrid"], 4),
        student_speedup=round(student_speed / base_speed, 3),
        student_knn=student_scores["knn"],
        heldout_queries=len(heldout),
        total_s=round(time.perf_counter() - STARTED, 1),
    )
    print(f"# load average after: {load_average()}", flush=True)
    print("RESULT " + " ".join(f"{k}={v}" for k, v in results.items()), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
