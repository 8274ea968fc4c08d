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
6. a report, nothing chosen on it: the base, tuned and student models' kNN nDCG@10 on ``examples/catalogue``'s
   keyword and descriptive queries, apart (``catalogue_kw_knn_<model>``, ``catalogue_desc_knn_<model>``; exact
   cosine over its 308 products): what learning from ESCI's mostly keyword judgments does to other queries.

Rules fixed before the first run (no number below was tuned on the held-out queries):
- hyperparameters are not searched: the trainer's defaults (lr 5e-5, linear decay, 10% warm-up), batch 32,
  128 tokens while training; epochs and example counts are set so that the whole run fits 30 min on an idle
  2-core machine, estimated from this README's idle figures (torch MiniLM-L6 ~20 docs/s forward at 128 tokens,
  a training step ~3x a forward; the corpus embedded once per model, ~340 s each): embedder 2 epochs over <= 8
  graded triplets per training query; reranker 1 epoch over <= 32 pairs per query; student distilled 2 epochs (the embedder's) on
  1,000 corpus texts (every corpus text since the second dev round of 2026-12-07, 4 epochs since the third, ``connector/train/fit.py``), then
  fine-tuned like the embedder (about 30 min in all; sizes fixed before any figure).
- the reranker's exception (second pass, 2026-12-07): trained pointwise it learned which products are good, not
  which match the query (held-out top 50 ordered no better than at random), so it trains with the cross-encoder
  MultipleNegativesRankingLoss on graded triplets from the hybrid window (<= 8 positives per training query),
  ``fit.RERANKER_SETTINGS``: 1 epoch, 96 tokens, a learning rate chosen on a dev split *of the training queries*
  by the rule written in ``connector/train/fit.py`` (the first pass's 1 epoch over <= 32 pairs per query is gone).
  The student's distillation runs at ``fit.DISTIL_LEARNING_RATE`` (2e-4, 6e-4 since the fifth dev round), chosen
  the same way, for ``fit.DISTIL_EPOCHS`` (4, third dev round: about +6 minutes); its fine-tune afterwards at
  ``fit.STUDENT_SETTINGS``' 1e-4 (the seventh dev round; the full model's keeps 5e-5).
- every corpus text is embedded at 128 tokens for every model (base included), so the figures compare models,
  not lengths (the served models keep the base's 256).
- nothing is chosen on the held-out queries; the held-out figures are printed once.

Speed figures are only comparable within one run (ratios); the load average is printed before and after.
Ends with one ``RESULT`` line.

    .venv/bin/python bench/train.py [--dataset ../shared/data/esci-us-subset] [--queries N]
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import logging
import os
import statistics
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
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
from connector.train.data import DISTIL_TEXTS, corpus_texts, split_for_training  # noqa: E402
from mappings import VectorField  # noqa: E402

logger = logging.getLogger("bench.train")

_SHARED = REPO.parent / "shared"
DEFAULT_DATASET = (_SHARED if _SHARED.is_dir() else Path("/work/shared")) / "data" / "esci-us-subset"
CATALOGUE = REPO / "examples" / "catalogue"
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


@dataclass
class Run:
    """What every stage shares: the cluster, the data, the base index and where models and indices go."""

    args: argparse.Namespace
    cluster: Any
    dataset: BeirDataset
    heldout: dict[str, str]
    texts: dict[str, str]
    tmp: Path
    indices: list[str] = field(default_factory=list)
    results: dict[str, Any] = field(default_factory=dict)
    base_search: Any = None
    base_embedder: Any = None

    def settings(self, epochs: float) -> fit.FitSettings:
        return fit.FitSettings(epochs=epochs, max_length=MAX_LENGTH, seed=SEED, threads=THREADS)

    def index_of(self, model_dir: Path, *, label: str, cache: bool = False) -> HybridSearch:
        """An index holding ``model_dir``'s corpus vectors, searched with that model's query vectors."""
        ids = list(self.texts)
        matrix = corpus_matrix(model_dir, ids, list(self.texts.values()), cache=cache)
        index = load_index(self.cluster, self.dataset, ids, matrix, label=label)
        self.indices.append(index)
        embedder = fit.LocalEmbedder(fit.load_embedder(model_dir, max_length=MAX_LENGTH))
        return HybridSearch(self.cluster, index, embedder=embedder, max_depth=100, embed_budget_s=None)


def base_stage(run: Run) -> None:
    run.base_search = run.index_of(default_base(), label="base", cache=True)
    run.base_embedder = run.base_search.embedder
    base = scores(run.base_search, run.heldout, run.dataset, ("knn", "hybrid"))
    note(f"base held-out: {base}")
    run.results.update(knn_base=base["knn"], hybrid_base=base["hybrid"])


def embedder_stage(run: Run) -> None:
    tuned = train_embedder(
        run.base_search, run.dataset, out=run.tmp / "tuned", settings=run.settings(run.args.epochs),
        max_positives_per_query=run.args.max_positives, score_heldout=False,
    )  # fmt: skip
    note(f"embedder trained: {tuned.card['fit']}")
    tuned_scores = scores(run.index_of(tuned.out, label="tuned"), run.heldout, run.dataset, ("knn", "hybrid"))
    note(f"tuned held-out: {tuned_scores}")
    run.results.update(
        knn_tuned=tuned_scores["knn"],
        hybrid_tuned=tuned_scores["hybrid"],
        train_embedder_s=tuned.card["fit"]["seconds"],
    )


def reranker_stage(run: Run) -> None:
    import rerank

    report = train_reranker(
        run.base_search, run.dataset, out=run.tmp / "reranker",
        settings=dataclasses.replace(fit.RERANKER_SETTINGS, seed=SEED, threads=THREADS),
        max_positives_per_query=run.args.max_positives, score_heldout=False,
    )  # fmt: skip
    note(f"reranker trained: {report.card['fit']}")
    reranker = rerank.load_in_process(str(report.out), device="cpu", torch_threads=THREADS)
    config = RerankConfig(reranker=reranker, top_k=50, template=TEMPLATE, timeout_s=600)
    search = HybridSearch(
        run.cluster,
        run.base_search.index,
        embedder=run.base_embedder,
        max_depth=100,
        rerank=config,
        embed_budget_s=None,
    )
    reranked = scores(search, run.heldout, run.dataset, ("hybrid", "hybrid+rerank"))
    note(f"rerank held-out: {reranked}")
    run.results.update(
        rerank_gain=round(reranked["hybrid+rerank"] - reranked["hybrid"], 4),
        rerank_top50_p50_ms=rerank_p50_ms(reranker, run.base_search, run.heldout, run.texts),
        train_reranker_s=report.card["fit"]["seconds"],
    )


def student_stage(run: Run) -> None:
    student = train_embedder(
        run.base_search, run.dataset, out=run.tmp / "student",
        settings=dataclasses.replace(run.settings(run.args.epochs), learning_rate=fit.STUDENT_SETTINGS.learning_rate),
        layers=run.args.layers, max_positives_per_query=run.args.max_positives,
        distil_texts=run.args.distil_texts, score_heldout=False,
    )  # fmt: skip
    note(f"student trained: {student.card['fit']} distil {student.card.get('distil')}")
    search = run.index_of(student.out, label="student")
    student_scores = scores(search, run.heldout, run.dataset, ("knn",))
    sample = list(run.texts.values())[:512]
    base_model, student_model = run.base_embedder.model, search.embedder.model
    # Interleaved, best of 2 rounds each: the machine is shared, the ratio is what is compared.
    rounds = [(docs_per_second(base_model, sample), docs_per_second(student_model, sample)) for _ in "ab"]
    base_speed, student_speed = max(r[0] for r in rounds), max(r[1] for r in rounds)
    note(f"student held-out: {student_scores}; docs/s base {base_speed} student {student_speed}")
    run.results.update(student_speedup=round(student_speed / base_speed, 3), student_knn=student_scores["knn"])


def catalogue_stage(run: Run) -> None:
    """A report, nothing is chosen on it: each model's kNN nDCG@10 on ``examples/catalogue``'s keyword and
    descriptive queries, apart (exact cosine over its products, 128 tokens). The models learn from ESCI's mostly
    keyword judgments; does that cost the queries in a shopper's own words, which lean on the vector leg?"""
    from connector.quality.adaptive_choice import read_query_kinds
    from connector.quality.evaluation import evaluate_runs

    catalogue = read_beir(CATALOGUE)
    kinds = read_query_kinds(CATALOGUE / "queries.jsonl")
    queries = catalogue.judged_queries()
    texts = corpus_texts(catalogue.corpus_path)
    ids = list(texts)
    models = {"base": default_base(), "tuned": run.tmp / "tuned", "student": run.tmp / "student"}
    for label, folder in models.items():
        if not folder.is_dir():
            continue
        model = fit.load_embedder(folder, max_length=MAX_LENGTH)
        matrix = np.asarray(fit.encode(model, list(texts.values())))
        vectors = np.asarray(fit.encode(model, list(queries.values())))
        runs = {
            q: {ids[i]: float(row[i]) for i in np.argsort(-row, kind="stable")[:100]}
            for q, row in zip(queries, vectors @ matrix.T)
        }
        for kind, short in (("keyword", "kw"), ("descriptive", "desc")):
            qids = sorted(q for q in queries if kinds.get(q) == kind)
            report = evaluate_runs(
                {q: dict(catalogue.qrels[q]) for q in qids},
                {label: {q: runs[q] for q in qids}},
                metrics=("ndcg@10",),
                compare_metrics=(),
            )
            run.results[f"catalogue_{short}_knn_{label}"] = round(report.metrics[label]["ndcg@10"], 4)
    note("catalogue kNN by kind: " + " ".join(f"{k}={v}" for k, v in run.results.items() if k.startswith("cat")))


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", type=Path, default=DEFAULT_DATASET)
    parser.add_argument("--es9-url", default=os.environ.get("ESHYBRID_TEST_ES9_URL"))
    parser.add_argument("--queries", type=int, default=0, help="smoke run: only this many held-out queries")
    parser.add_argument("--epochs", type=float, default=2.0, help="embedder epochs (rule: 2)")
    parser.add_argument("--max-positives", type=int, default=8)
    parser.add_argument("--distil-texts", type=int, default=DISTIL_TEXTS)
    parser.add_argument("--layers", type=int, default=3)
    parser.add_argument("--corpus-limit", type=int, default=0, help="smoke run: embed only the first N docs")
    args = parser.parse_args()
    if not args.es9_url:
        parser.error("give --es9-url or set ESHYBRID_TEST_ES9_URL")
    return args


def main() -> int:
    args = parse_args()
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
    cluster = connect(args.es9_url)
    with tempfile.TemporaryDirectory(prefix="eshybrid-bench-train-") as tmp:
        run = Run(args, cluster, dataset, heldout, texts, Path(tmp))
        try:
            for stage in (base_stage, embedder_stage, reranker_stage, student_stage, catalogue_stage):
                stage(run)
        finally:
            for index in run.indices:
                cluster.request("DELETE", f"/{index}")
    run.results.update(heldout_queries=len(heldout), total_s=round(time.perf_counter() - STARTED, 1))
    print(f"# load average after: {load_average()}", flush=True)
    print("RESULT " + " ".join(f"{k}={v}" for k, v in run.results.items()), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
