"""Choosing a default from judgments: fusion candidates compared by nDCG@10 and bootstrap stability.

The rule (the same for the library default, ``eshybrid tune`` and ``bench/hybrid_quality.py``):

1. every candidate is scored per query (nDCG@10, recall@100) on the same legs;
2. the judged queries are resampled with replacement ``bootstrap`` times (seeded); in each
   resample a candidate *holds* when its mean nDCG@10 is within ``epsilon`` of that resample's
   best candidate;
3. the candidate that holds in the largest share of resamples is chosen; ties go to the higher
   mean nDCG@10, then to the earlier (simpler) candidate.

So a candidate that wins on the full set by a hair but loses often on resamples is not chosen
over one that is always close to the top. Candidates with *tuned* weights are scored honestly:
their per-query figures come from 2-fold cross-fitting (the weight is chosen on one half of the
queries and scored on the other); the weight they would ship with is the one chosen on all queries.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from connector.quality.evaluation import Run, evaluate_runs, ranking_to_run
from connector.search.adaptive import QueryEvidence
from connector.search.fusion import LegHit, fuse, single_leg
from connector.search.models import FusionConfig

__all__ = [
    "Candidate",
    "CandidateResult",
    "FusionComparison",
    "single_leg_run",
    "SHARES",
    "bootstrap_hold_shares",
    "choose",
    "compare_fusions",
    "compare_runs",
    "fusion_candidates",
]

# Lexical weight shares tried by the tuned candidates (the vector leg gets 1 - share).
SHARES: tuple[float, ...] = (0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8)
Legs = Mapping[str, Mapping[str, Sequence[LegHit]]]
Evidences = Mapping[str, QueryEvidence]


@dataclass(frozen=True)
class Candidate:
    """A fusion to compare: a fixed config, or a family whose lexical share is tuned (``tuned=True``)."""

    name: str
    fusion: FusionConfig
    tuned: bool = False


def fusion_candidates() -> list[Candidate]:
    """RRF (k=60 and k=20, equal and tuned weights), then min-max, z-score, l2 and DBSF linear
    fusion with equal and tuned weights, then the query-adaptive fusion (the library default's base
    0.7/0.3, and a tuned base share; it needs each query's evidence, see :func:`compare_fusions`).
    The order is the tie-break order (simpler first)."""
    out = [
        Candidate("rrf_k60", FusionConfig(method="rrf", rank_constant=60)),
        Candidate("rrf_k20", FusionConfig(method="rrf", rank_constant=20)),
    ]
    for normalizer in ("min_max", "z_score", "l2", "dbsf"):
        config = FusionConfig(method="linear", normalizer=normalizer, lexical_weight=0.5, vector_weight=0.5)
        out.append(Candidate(normalizer, config))
    out.append(Candidate("rrf_k60_tuned", FusionConfig(method="rrf", rank_constant=60), tuned=True))
    for normalizer in ("min_max", "z_score", "l2", "dbsf"):
        config = FusionConfig(method="linear", normalizer=normalizer, lexical_weight=0.5, vector_weight=0.5)
        out.append(Candidate(f"{normalizer}_tuned", config, tuned=True))
    adaptive = FusionConfig(method="adaptive", lexical_weight=0.7, vector_weight=0.3)
    out.append(Candidate("adaptive", adaptive))
    out.append(Candidate("adaptive_tuned", adaptive, tuned=True))
    return out


@dataclass
class CandidateResult:
    """One candidate's figures; ``fusion`` is what it would ship with."""

    name: str
    fusion: FusionConfig
    ndcg10: float
    recall100: float
    hold_share: float = 0.0
    per_query: dict[str, float] = field(default_factory=dict, repr=False)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "fusion": self.fusion.describe(),
            "ndcg@10": round(self.ndcg10, 6),
            "recall@100": round(self.recall100, 6),
            "hold_share": round(self.hold_share, 4),
        }


@dataclass
class FusionComparison:
    """Candidates with their figures and hold shares, and the chosen one."""

    results: list[CandidateResult]
    chosen: str
    epsilon: float
    bootstrap: int
    queries: int

    @property
    def best(self) -> CandidateResult:
        return next(r for r in self.results if r.name == self.chosen)

    def result(self, name: str) -> CandidateResult:
        return next(r for r in self.results if r.name == name)

    def to_json(self) -> dict[str, Any]:
        return {
            "chosen": self.chosen,
            "epsilon": self.epsilon,
            "bootstrap": self.bootstrap,
            "queries": self.queries,
            "candidates": [r.to_json() for r in self.results],
        }

    def format_table(self) -> str:
        width = max(len(r.name) for r in self.results) + 2
        lines = [
            f"{'candidate':<{width}}{'nDCG@10':>9}{'recall@100':>12}{'holds':>8}  fusion",
        ]
        for r in self.results:
            mark = "  <- chosen" if r.name == self.chosen else ""
            lines.append(
                f"{r.name:<{width}}{r.ndcg10:>9.4f}{r.recall100:>12.4f}{r.hold_share:>8.1%}  {r.fusion.describe()}{mark}"
            )
        lines.append(
            f"(holds: share of {self.bootstrap} bootstrap resamples of the {self.queries} queries in which the "
            f"candidate's nDCG@10 is within {self.epsilon:g} of the best candidate's)"
        )
        return "\n".join(lines)


def bootstrap_hold_shares(
    per_query: Mapping[str, Mapping[str, float]], *, epsilon: float, bootstrap: int, seed: int
) -> dict[str, float]:
    """For each name, the share of query resamples where its mean is within ``epsilon`` of the best mean."""
    names = list(per_query)
    qids = sorted(next(iter(per_query.values())))
    matrix = np.array([[per_query[n][q] for q in qids] for n in names], dtype=np.float64)
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, len(qids), size=(bootstrap, len(qids)))
    means = matrix[:, picks].mean(axis=2)  # names x resamples
    holds = means >= means.max(axis=0, keepdims=True) - epsilon - 1e-12
    return {n: float(holds[i].mean()) for i, n in enumerate(names)}


def choose(means: Mapping[str, float], shares: Mapping[str, float]) -> str:
    """The name with the largest hold share, then the higher mean, then the earliest."""
    names = list(means)
    return max(names, key=lambda n: (round(shares[n], 9), round(means[n], 9), -names.index(n)))


def compare_runs(
    qrels: Mapping[str, Mapping[str, int]],
    runs: Mapping[str, Run],
    *,
    epsilon: float = 0.01,
    bootstrap: int = 1000,
    seed: int = 13,
) -> tuple[dict[str, dict[str, float]], dict[str, dict[str, float]], dict[str, float], str]:
    """Per-query nDCG@10, means (nDCG@10, recall@100), hold shares and the chosen run name."""
    report = evaluate_runs(qrels, runs, metrics=("ndcg@10", "recall@100"), compare_metrics=())
    per_query = {name: report.per_query[name]["ndcg@10"] for name in runs}
    shares = bootstrap_hold_shares(per_query, epsilon=epsilon, bootstrap=bootstrap, seed=seed)
    means = {name: report.metrics[name]["ndcg@10"] for name in runs}
    return per_query, report.metrics, shares, choose(means, shares)


def _run(legs: Legs, config: FusionConfig, qids: Sequence[str], depth: int, evidences: Evidences | None = None) -> Run:
    return {
        q: ranking_to_run([d.id for d in fuse(legs[q], config, evidence=(evidences or {}).get(q))[:depth]])
        for q in qids
    }


def _with_share(config: FusionConfig, share: float) -> FusionConfig:
    return config.model_copy(update={"lexical_weight": share, "vector_weight": round(1.0 - share, 6)})


def _cross_fitted(
    grid_scores: Mapping[float, Mapping[str, Mapping[str, float]]], qids: Sequence[str], seed: int
) -> tuple[dict[str, float], dict[str, float], float]:
    """Per-query nDCG@10 / recall@100 with the share chosen on the other half; and the all-query share."""

    def best_share(on: Sequence[str]) -> float:
        return max(SHARES, key=lambda s: (round(sum(grid_scores[s]["ndcg@10"][q] for q in on), 9), -abs(s - 0.5)))

    shuffled = sorted(qids)
    random.Random(seed).shuffle(shuffled)
    halves = (shuffled[: len(shuffled) // 2], shuffled[len(shuffled) // 2 :])
    ndcg: dict[str, float] = {}
    recall: dict[str, float] = {}
    for this, other in (halves, halves[::-1]):
        share = best_share(other)
        for q in this:
            ndcg[q] = grid_scores[share]["ndcg@10"][q]
            recall[q] = grid_scores[share]["recall@100"][q]
    return ndcg, recall, best_share(qids)


def compare_fusions(
    legs: Legs,
    qrels: Mapping[str, Mapping[str, int]],
    *,
    candidates: Sequence[Candidate] | None = None,
    depth: int = 100,
    epsilon: float = 0.01,
    bootstrap: int = 1000,
    seed: int = 13,
    evidences: Evidences | None = None,
) -> FusionComparison:
    """Score every candidate on the same legs and choose one (see the module docstring).

    Args:
        legs: ``{query_id: {"lexical": [...], "vector": [...]}}`` (:meth:`HybridSearch.retrieve_legs`).
        qrels: graded judgments; queries without a relevant one are left out.
        candidates: default :func:`fusion_candidates`.
        depth: ranking depth scored (recall@100 needs 100).
        epsilon: how close to the resample's best counts as holding (nDCG@10 points).
        bootstrap: resamples.
        seed: resampling and cross-fitting seed.
        evidences: each query's :class:`~connector.search.adaptive.QueryEvidence` (the adaptive
            candidates without it keep their base weights: linear fusion).
    """
    qids = sorted(q for q in legs if any(g > 0 for g in qrels.get(q, {}).values()))
    judged = {q: qrels[q] for q in qids}
    per_query: dict[str, dict[str, float]] = {}
    recall: dict[str, dict[str, float]] = {}
    shipped: dict[str, FusionConfig] = {}
    for cand in candidates or fusion_candidates():
        if not cand.tuned:
            report = evaluate_runs(judged, {"c": _run(legs, cand.fusion, qids, depth, evidences)}, compare_metrics=())
            per_query[cand.name] = report.per_query["c"]["ndcg@10"]
            recall[cand.name] = report.per_query["c"]["recall@100"]
            shipped[cand.name] = cand.fusion
            continue
        runs = {str(s): _run(legs, _with_share(cand.fusion, s), qids, depth, evidences) for s in SHARES}
        grid = evaluate_runs(judged, runs, compare_metrics=()).per_query
        ndcg, rec, share = _cross_fitted({s: grid[str(s)] for s in SHARES}, qids, seed)
        per_query[cand.name], recall[cand.name] = ndcg, rec
        shipped[cand.name] = _with_share(cand.fusion, share)
    shares = bootstrap_hold_shares(per_query, epsilon=epsilon, bootstrap=bootstrap, seed=seed)
    means = {n: sum(v.values()) / len(qids) for n, v in per_query.items()}
    results = [
        CandidateResult(
            name=n,
            fusion=shipped[n],
            ndcg10=means[n],
            recall100=sum(recall[n].values()) / len(qids),
            hold_share=shares[n],
            per_query=per_query[n],
        )
        for n in per_query
    ]
    return FusionComparison(results, choose(means, shares), epsilon, bootstrap, len(qids))


def single_leg_run(legs: Legs, leg: str, qids: Sequence[str], depth: int = 100) -> Run:
    """The run of one leg alone (``lexical`` or ``vector``)."""
    return {q: ranking_to_run([d.id for d in single_leg(legs[q].get(leg, []), leg=leg)][:depth]) for q in qids}
