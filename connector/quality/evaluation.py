"""Retrieval quality: nDCG@10, recall@100 and MRR@10 per mode, paired comparisons, fusion tuning.

Metrics come from ranx (trec_eval definitions: nDCG with linear gain, grade >= 1
relevant for recall and MRR); significance from scipy (paired t-test and
Wilcoxon signed-rank over per-query values). ranx and scipy are imported
lazily (the ``eval`` extra), so the base install never needs them.

Queries without any relevant judgment are left out (their nDCG is undefined)
and counted in ``skipped_queries``.
"""

from __future__ import annotations

import itertools
import logging
import math
import random
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from connector.errors import ConfigError
from connector.search.adaptive import QueryEvidence
from connector.search.fusion import FusedDoc, LegHit, fuse, single_leg
from connector.search.models import DEFAULT_FUSION, FusionConfig

__all__ = [
    "METRICS",
    "Comparison",
    "EvalReport",
    "TuneReport",
    "default_grid",
    "evaluate_runs",
    "evaluate_search",
    "compare_modes",
    "ranking_to_run",
    "split_queries",
    "tune_fusion",
]

logger = logging.getLogger(__name__)

METRICS: tuple[str, ...] = ("ndcg@10", "recall@100", "mrr@10")
Run = dict[str, dict[str, float]]
Qrels = dict[str, dict[str, int]]


@dataclass(frozen=True)
class Comparison:
    """A paired comparison of two modes on one metric (``b - a``)."""

    a: str
    b: str
    metric: str
    mean_diff: float
    wins: int
    losses: int
    ties: int
    p_ttest: float | None
    p_wilcoxon: float | None
    per_query: dict[str, float] = field(default_factory=dict, repr=False)

    def to_dict(self, *, per_query: bool = False) -> dict[str, Any]:
        out: dict[str, Any] = {
            "a": self.a,
            "b": self.b,
            "metric": self.metric,
            "mean_diff": round(self.mean_diff, 6),
            "wins": self.wins,
            "losses": self.losses,
            "ties": self.ties,
            "p_ttest": self.p_ttest,
            "p_wilcoxon": self.p_wilcoxon,
        }
        if per_query:
            out["per_query"] = {q: round(d, 6) for q, d in self.per_query.items()}
        return out


@dataclass
class EvalReport:
    """Mean metrics per mode, the per-query values and the paired comparisons."""

    metrics: dict[str, dict[str, float]]
    per_query: dict[str, dict[str, dict[str, float]]]
    comparisons: list[Comparison]
    queries: int
    skipped_queries: int = 0

    def to_json(self, *, per_query: bool = False) -> dict[str, Any]:
        """``{"bm25": {"ndcg@10": ..., ...}, ..., "comparisons": [...], "queries": n}``."""
        out: dict[str, Any] = {
            mode: {m: round(v, 6) for m, v in values.items()} for mode, values in self.metrics.items()
        }
        out["comparisons"] = [c.to_dict(per_query=per_query) for c in self.comparisons]
        out["queries"] = self.queries
        out["skipped_queries"] = self.skipped_queries
        return out

    def format_table(self) -> str:
        """The figures as a readable text table, comparisons below."""
        metrics = list(next(iter(self.metrics.values()), {}))
        width = max([len(m) for m in self.metrics] + [6])
        lines = [f"{'mode':<{width}}  " + "  ".join(f"{m:>10}" for m in metrics)]
        for mode, values in self.metrics.items():
            lines.append(f"{mode:<{width}}  " + "  ".join(f"{values[m]:>10.4f}" for m in metrics))
        lines.append(
            f"({self.queries} queries"
            + (f", {self.skipped_queries} without relevant judgments skipped)" if self.skipped_queries else ")")
        )
        if self.comparisons:
            lines.append("")
            lines.append("paired comparison (b - a, per query): mean diff, wins/losses/ties, p t-test, p wilcoxon")
            for c in self.comparisons:
                lines.append(
                    f"  {c.b} vs {c.a} {c.metric}: {c.mean_diff:+.4f}  {c.wins}/{c.losses}/{c.ties}  "
                    f"p_t={_fmt_p(c.p_ttest)}  p_w={_fmt_p(c.p_wilcoxon)}"
                )
        return "\n".join(lines)


def _fmt_p(p: float | None) -> str:
    return "n/a" if p is None else f"{p:.4g}"


def ranking_to_run(ids: Sequence[str]) -> dict[str, float]:
    """A run entry whose scores keep exactly the given order (rank 1 scores highest)."""
    n = len(ids)
    return {doc_id: float(n - i) for i, doc_id in enumerate(ids)}


def _positive_qrels(qrels: Mapping[str, Mapping[str, int]], qids: Sequence[str]) -> Qrels:
    return {q: {d: int(g) for d, g in qrels[q].items()} for q in qids}


def evaluate_runs(
    qrels: Mapping[str, Mapping[str, int]],
    runs: Mapping[str, Run],
    *,
    metrics: Sequence[str] = METRICS,
    compare_metrics: Sequence[str] = ("ndcg@10",),
) -> EvalReport:
    """Score each named run against ``qrels`` and compare every pair of runs.

    Only queries with a relevant judgment are scored; a query a run has no
    result for scores 0.
    """
    from ranx import Qrels as RanxQrels
    from ranx import Run as RanxRun
    from ranx import evaluate

    qids = sorted(q for q, docs in qrels.items() if any(g > 0 for g in docs.values()))
    if not qids:
        raise ConfigError("no query has a relevant judgment (grade > 0) in the qrels", field="qrels")
    ranx_qrels = RanxQrels(_positive_qrels(qrels, qids))
    per_query: dict[str, dict[str, dict[str, float]]] = {}
    means: dict[str, dict[str, float]] = {}
    for mode, run in runs.items():
        # ranx needs every judged query in the run; an empty answer gets a dummy non-judged doc.
        complete = {q: (dict(run[q]) if run.get(q) else {"__none__": 0.0}) for q in qids}
        scores = evaluate(ranx_qrels, RanxRun(complete, name=mode), list(metrics), return_mean=False)
        if len(metrics) == 1:
            scores = {metrics[0]: scores}
        per_query[mode] = {m: {q: float(v) for q, v in zip(qids, scores[m])} for m in metrics}
        means[mode] = {m: float(sum(per_query[mode][m].values()) / len(qids)) for m in metrics}
    comparisons = compare_modes(per_query, metrics=compare_metrics)
    skipped = sum(1 for q in qrels if q not in set(qids))
    return EvalReport(
        metrics=means, per_query=per_query, comparisons=comparisons, queries=len(qids), skipped_queries=skipped
    )


def compare_modes(
    per_query: Mapping[str, Mapping[str, Mapping[str, float]]], *, metrics: Sequence[str] = ("ndcg@10",)
) -> list[Comparison]:
    """Paired comparisons of every pair of modes (in the order given) on ``metrics``."""
    from scipy import stats

    out: list[Comparison] = []
    for (a, qa), (b, qb) in itertools.combinations(per_query.items(), 2):
        for metric in metrics:
            qids = sorted(qa[metric])
            diffs = {q: qb[metric][q] - qa[metric][q] for q in qids}
            values = list(diffs.values())
            p_t = p_w = None
            if any(abs(d) > 1e-12 for d in values) and len(values) > 1:
                with warnings.catch_warnings():
                    # near-constant differences: scipy warns about precision; the p-value says enough
                    warnings.simplefilter("ignore", RuntimeWarning)
                    t = stats.ttest_rel([qb[metric][q] for q in qids], [qa[metric][q] for q in qids])
                    p_t = None if math.isnan(float(t.pvalue)) else float(t.pvalue)
                    try:
                        p_w = float(stats.wilcoxon(values).pvalue)
                    except ValueError:
                        p_w = None
            out.append(
                Comparison(
                    a=a,
                    b=b,
                    metric=metric,
                    mean_diff=sum(values) / len(values) if values else 0.0,
                    wins=sum(d > 1e-12 for d in values),
                    losses=sum(d < -1e-12 for d in values),
                    ties=sum(abs(d) <= 1e-12 for d in values),
                    p_ttest=p_t,
                    p_wilcoxon=p_w,
                    per_query=diffs,
                )
            )
    return out


def evaluate_search(
    search: Any,
    queries: Mapping[str, str],
    qrels: Mapping[str, Mapping[str, int]],
    *,
    modes: Sequence[str] = ("bm25", "knn", "hybrid"),
    depth: int = 100,
    fusion: FusionConfig | None = None,
    strategy: str | None = None,
    progress: Callable[[str, int, int], None] | None = None,
    user: str | Mapping[str, str] | None = None,
    personal_weight: float | None = None,
) -> EvalReport:
    """Run every judged query through ``search.search`` in each mode and score the rankings.

    Args:
        search: a :class:`connector.search.HybridSearch`.
        queries: ``{query_id: text}``.
        qrels: ``{query_id: {doc_id: grade}}``.
        modes: modes to evaluate (``bm25``, ``knn``, ``hybrid``, ``hybrid+rerank``).
        depth: hits per query (100 for recall@100; must be <= the search's ``max_depth``).
        fusion, strategy: overrides passed to every hybrid search.
        progress: called as ``progress(mode, done, total)``.
        user: personalize every query for this shopper id, or ``{query_id: shopper id}`` (queries
            not in it are not personalized); see ``HybridSearch.search(user=)``.
        personal_weight: the personal signal's weight (default: the library's).
    """
    judged = [q for q in sorted(queries) if any(g > 0 for g in qrels.get(q, {}).values())]
    if not judged:
        raise ConfigError("none of the queries has a relevant judgment in the qrels", field="qrels")
    runs: dict[str, Run] = {}
    for mode in modes:
        run: Run = {}
        for i, qid in enumerate(judged, start=1):
            shopper = user.get(qid) if isinstance(user, Mapping) else user
            personal = {"user": shopper, "personal_weight": personal_weight} if shopper is not None else {}
            response = search.search(
                queries[qid], mode=mode, size=depth, page=1, source=False, fusion=fusion, strategy=strategy, **personal
            )
            run[qid] = ranking_to_run(response.ids)
            if progress:
                progress(mode, i, len(judged))
        runs[mode] = run
    report = evaluate_runs({q: qrels[q] for q in judged}, runs)
    report.skipped_queries = len(queries) - len(judged)
    return report


# -- tuning --------------------------------------------------------------------------


def default_grid() -> list[FusionConfig]:
    """A small grid: the library default (:data:`DEFAULT_FUSION`) first, then RRF and linear variants."""
    shares = (0.3, 0.4, 0.5, 0.6, 0.7)
    grid = [DEFAULT_FUSION]
    for k in (20, 60, 100):
        for s in shares:
            grid.append(FusionConfig(method="rrf", rank_constant=k, lexical_weight=s, vector_weight=1 - s))
    for normalizer in ("min_max", "z_score", "l2"):
        for s in shares:
            grid.append(FusionConfig(method="linear", normalizer=normalizer, lexical_weight=s, vector_weight=1 - s))
    unique: list[FusionConfig] = []
    for config in grid:
        if all(not _same_ranking_config(config, seen) for seen in unique):
            unique.append(config)
    return unique


def _same_ranking_config(a: FusionConfig, b: FusionConfig) -> bool:
    if a.method != b.method:
        return False
    ratio_a = a.lexical_weight / (a.lexical_weight + a.vector_weight)
    ratio_b = b.lexical_weight / (b.lexical_weight + b.vector_weight)
    same_weights = abs(ratio_a - ratio_b) < 1e-9
    if a.method == "rrf":
        return same_weights and a.rank_constant == b.rank_constant
    return same_weights and a.normalizer == b.normalizer and a.missing == b.missing


def split_queries(qids: Sequence[str], *, train_fraction: float, seed: int) -> tuple[list[str], list[str]]:
    """A seeded train/test split of query ids (sorted first, so the split does not depend on input order)."""
    if not 0 < train_fraction < 1:
        raise ConfigError("train_fraction must be within (0, 1)", field="train_fraction")
    ordered = sorted(qids)
    random.Random(seed).shuffle(ordered)
    cut = max(1, min(len(ordered) - 1, round(len(ordered) * train_fraction)))
    return sorted(ordered[:cut]), sorted(ordered[cut:])


@dataclass
class TuneReport:
    """The chosen fusion (best on train) and how it, the default and the single legs do on test."""

    best: FusionConfig
    train_metric: str
    train_scores: list[tuple[str, float]]
    test: EvalReport
    train_queries: list[str]
    test_queries: list[str]
    seed: int

    def to_json(self) -> dict[str, Any]:
        return {
            "best": self.best.model_dump(),
            "best_label": self.best.describe(),
            "seed": self.seed,
            "train_queries": len(self.train_queries),
            "test_queries": len(self.test_queries),
            "train": [{"fusion": label, self.train_metric: round(score, 6)} for label, score in self.train_scores],
            "test": self.test.to_json(),
        }


def _runs_from_legs(
    legs: Mapping[str, Mapping[str, Sequence[LegHit]]],
    config: FusionConfig,
    qids: Sequence[str],
    depth: int,
    evidences: Mapping[str, QueryEvidence] | None = None,
) -> Run:
    run: Run = {}
    for q in qids:
        ranking: list[FusedDoc] = fuse(legs[q], config, evidence=(evidences or {}).get(q))[:depth]
        run[q] = ranking_to_run([d.id for d in ranking])
    return run


def tune_fusion(
    legs: Mapping[str, Mapping[str, Sequence[LegHit]]],
    qrels: Mapping[str, Mapping[str, int]],
    *,
    grid: Sequence[FusionConfig] | None = None,
    train_fraction: float = 0.5,
    seed: int = 13,
    metric: str = "ndcg@10",
    depth: int = 100,
    evidences: Mapping[str, QueryEvidence] | None = None,
) -> TuneReport:
    """Choose fusion settings on a train split of queries and report them on the rest.

    Args:
        legs: ``{query_id: {"lexical": [...], "vector": [...]}}`` as
            :meth:`HybridSearch.retrieve_legs` returns them (each leg fetched once).
        qrels: graded judgments.
        grid: candidate settings (default :func:`default_grid`; ties go to the earlier one).
        train_fraction: share of judged queries used to choose.
        seed: split seed.
        metric: what is maximised on train.
        depth: ranking depth scored.
        evidences: each query's evidence for the adaptive fusion (``None``: its base weights).
    """
    judged = [q for q in sorted(legs) if any(g > 0 for g in qrels.get(q, {}).values())]
    train, test = split_queries(judged, train_fraction=train_fraction, seed=seed)
    candidates = list(grid or default_grid())
    train_qrels = {q: qrels[q] for q in train}
    runs = {c.describe(): _runs_from_legs(legs, c, train, depth, evidences) for c in candidates}
    train_eval = evaluate_runs(train_qrels, runs, metrics=(metric,), compare_metrics=())
    scored = [(c.describe(), train_eval.metrics[c.describe()][metric]) for c in candidates]
    best_index = max(range(len(candidates)), key=lambda i: (scored[i][1], -i))
    best = candidates[best_index]
    default = DEFAULT_FUSION
    test_runs: dict[str, Run] = {
        "bm25": {
            q: ranking_to_run([d.id for d in single_leg(legs[q].get("lexical", []), leg="lexical")][:depth])
            for q in test
        },
        "knn": {
            q: ranking_to_run([d.id for d in single_leg(legs[q].get("vector", []), leg="vector")][:depth]) for q in test
        },
        f"default {default.describe()}": _runs_from_legs(legs, default, test, depth, evidences),
    }
    test_runs[f"tuned {best.describe()}"] = _runs_from_legs(legs, best, test, depth, evidences)
    test_eval = evaluate_runs({q: qrels[q] for q in test}, test_runs)
    return TuneReport(
        best=best,
        train_metric=metric,
        train_scores=sorted(scored, key=lambda s: -s[1]),
        test=test_eval,
        train_queries=train,
        test_queries=test,
        seed=seed,
    )
