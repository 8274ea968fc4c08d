"""Choosing the adaptive fusion's numbers: its candidates, the evidence of each query, and the rule.

The rule (written down before the run that chose :data:`connector.search.models.DEFAULT_FUSION`;
bench/hybrid_quality.py applies it and prints every candidate):

1. every candidate of :func:`adaptive_candidates` is scored (nDCG@10, client-side on the same legs
   and the same evidence) on each development set: the ESCI dev queries and the catalogue's
   descriptive queries (examples/catalogue, ``metadata.kind``), on every cluster of the run;
2. a candidate's *margin* is its worst ``nDCG@10 - better leg's nDCG@10`` over those
   (cluster, set) pairs: a hybrid should not lose to its better leg on any kind of query;
3. the candidate with the largest margin is chosen; margins within 0.002 are ties, which go to the
   higher mean nDCG@10 over the pairs, then to the earlier (simpler) candidate.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from connector.quality.evaluation import Run, evaluate_runs, ranking_to_run
from connector.search.adaptive import AdaptiveCoefficients, QueryEvidence
from connector.search.correction import correction_from, evidence_of, suggest_body
from connector.search.fusion import LegHit, fuse_explained
from connector.search.models import FusionConfig

__all__ = [
    "AdaptiveCandidate",
    "AdaptiveComparison",
    "QuerySet",
    "compare_adaptive",
    "adaptive_candidates",
    "adaptive_run",
    "choose_adaptive",
    "query_evidences",
    "read_query_kinds",
]

_TIE = 0.002


@dataclass(frozen=True)
class AdaptiveCandidate:
    """One setting of the adaptive fusion: its base weights and the rule's coefficients."""

    name: str
    fusion: FusionConfig
    coefficients: AdaptiveCoefficients


@dataclass(frozen=True)
class QuerySet:
    """One (cluster, query set)'s legs and evidence, and its legs' own nDCG@10: what candidates are scored on."""

    legs: Mapping[str, Mapping[str, Sequence[LegHit]]]
    evidences: Mapping[str, QueryEvidence]
    qrels: Mapping[str, Mapping[str, int]]
    bm25: float
    knn: float


@dataclass(frozen=True)
class AdaptiveComparison:
    """Every candidate's nDCG@10 per query set, its margin, and the chosen one."""

    scores: Mapping[str, Mapping[str, float]]
    better_leg: Mapping[str, float]
    margins: Mapping[str, float]
    chosen: str

    def format_table(self) -> str:
        keys = list(self.better_leg)
        lines = [f"{'candidate':<34}" + "".join(f"{k:>13}" for k in keys) + f"{'margin':>9}"]
        lines.append(f"{'better leg':<34}" + "".join(f"{self.better_leg[k]:>13.4f}" for k in keys))
        for name, row in self.scores.items():
            mark = "  <- chosen" if name == self.chosen else ""
            cells = "".join(f"{row[k]:>13.4f}" for k in keys)
            lines.append(f"{name:<34}{cells}{self.margins[name]:>+9.4f}{mark}")
        return "\n".join(lines)


def compare_adaptive(
    sets: Mapping[str, QuerySet], *, candidates: Sequence[AdaptiveCandidate] | None = None, depth: int = 100
) -> AdaptiveComparison:
    """Score every candidate on every query set and choose one (the module docstring's rule)."""
    scores: dict[str, dict[str, float]] = {}
    for cand in candidates or adaptive_candidates():
        scores[cand.name] = {}
        for key, qs in sets.items():
            run = adaptive_run(qs.legs, qs.evidences, cand, depth=depth)
            scores[cand.name][key] = evaluate_runs(qs.qrels, {"c": run}, compare_metrics=()).metrics["c"]["ndcg@10"]
    better = {key: max(qs.bm25, qs.knn) for key, qs in sets.items()}
    chosen, margins = choose_adaptive(scores, better)
    return AdaptiveComparison(scores, better, margins, chosen)


def adaptive_candidates() -> list[AdaptiveCandidate]:
    """Base lexical share 0.7 (then 0.6, 0.8), coverage power 1 (then 0.5, 2, 3), agreement weight 0
    (then 0.5): the order is the tie-break order (the simplest, the old default's share, first)."""
    out: list[AdaptiveCandidate] = []
    for agreement in (0.0, 0.5):
        for share in (0.7, 0.6, 0.8):
            for power in (1.0, 0.5, 2.0, 3.0):
                fusion = FusionConfig(method="adaptive", lexical_weight=share, vector_weight=round(1 - share, 6))
                coefficients = AdaptiveCoefficients(coverage_power=power, agreement_weight=agreement)
                out.append(
                    AdaptiveCandidate(f"adaptive(b={share:g}, p={power:g}, a={agreement:g})", fusion, coefficients)
                )
    return out


def adaptive_run(
    legs: Mapping[str, Mapping[str, Sequence[LegHit]]],
    evidences: Mapping[str, QueryEvidence],
    candidate: AdaptiveCandidate,
    *,
    depth: int = 100,
) -> Run:
    """The run of one candidate over the queries of ``legs``."""
    run: Run = {}
    for qid, query_legs in legs.items():
        ranking, _ = fuse_explained(
            query_legs, candidate.fusion, evidence=evidences.get(qid), coefficients=candidate.coefficients
        )
        run[qid] = ranking_to_run([d.id for d in ranking[:depth]])
    return run


def choose_adaptive(
    scores: Mapping[str, Mapping[str, float]], better_leg: Mapping[str, float]
) -> tuple[str, dict[str, float]]:
    """The chosen candidate name and every candidate's margin (the module docstring's rule).

    Args:
        scores: candidate name -> {(cluster, set) key -> nDCG@10}, candidates in tie-break order.
        better_leg: (cluster, set) key -> the better leg's nDCG@10.
    """
    margins = {n: min(s[k] - better_leg[k] for k in better_leg) for n, s in scores.items()}
    means = {n: sum(s[k] for k in better_leg) / len(better_leg) for n, s in scores.items()}
    best = max(margins.values())
    tied = [n for n in scores if margins[n] >= best - _TIE]
    top = max(means[n] for n in tied)
    return next(n for n in tied if means[n] >= top - 1e-12), margins


def query_evidences(search: Any, queries: Mapping[str, str]) -> dict[str, QueryEvidence]:
    """Each query's evidence as the search reads it: the correction's suggest request (the one the
    search sends itself), decided with the search's correction mode (a corrected word counts as its
    correction, which the lexical leg also searched)."""
    fields = list(search.profile.lexical_fields)
    shingle = next((search.profile.shingle_fields[f] for f in fields if f in search.profile.shingle_fields), None)
    out: dict[str, QueryEvidence] = {}
    for qid, text in queries.items():
        body = suggest_body(text, fields=fields, shingle_field=shingle, settings=search.correction)
        answer = search.cluster.search(search.index, body) if body is not None else {}
        correction = correction_from(text, answer, mode=search.correct, suggester="term")
        out[qid] = evidence_of(text, correction)
    return out


def read_query_kinds(path: str | Path) -> dict[str, str]:
    """``queries.jsonl`` -> ``{query_id: metadata.kind}`` (``keyword`` where a query names none)."""
    kinds: dict[str, str] = {}
    with Path(path).open(encoding="utf-8") as f:
        for line in f:
            if line.strip():
                row = json.loads(line)
                kinds[str(row["_id"])] = str((row.get("metadata") or {}).get("kind", "keyword"))
    return kinds
