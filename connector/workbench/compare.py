"""What the page shows beside the hits, as pure functions: moves between the lists, score parts, timings, nDCG.

Grades from several raters become one grade per (query, document) by one rule, used by the page's nDCG and
by the BEIR export alike (so ``eshybrid eval`` on the export gives the figure the page showed): the median of
the raters' grades, the lower of the two middle ones when their count is even (a disputed document is not
promoted). Documents whose raters differ are listed as disagreements.

nDCG@10 is the trec_eval definition that ``eshybrid eval`` computes with ranx: linear gain,
``sum(grade_i / log2(i + 1))`` over the first 10 hits, divided by the same sum over the query's grades sorted
best first; an unrated hit counts 0; a query without a grade above 0 has no nDCG (``None``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final, Literal

from connector.search.models import HitExplanation, SearchTimings

__all__ = [
    "Move",
    "ScorePart",
    "TimingBar",
    "aggregate_grade",
    "disagreements",
    "moves",
    "ndcg_at",
    "score_parts",
    "timing_bars",
]

# The stages a search times: the first round trip runs the spelling suggestion and the query embedding at once
# (both timed from its start), then the legs, fusion, the page's sources and the rerank one after the other.
FIRST_TRIP: Final = ("correct", "embed")
THEN: Final = ("search", "fuse", "fetch", "rerank")


@dataclass(frozen=True)
class Move:
    """Where a hit of one list sits in the other: ``up``/``down`` by ``by`` places, ``same``, or ``only`` here."""

    kind: Literal["up", "down", "same", "only"]
    by: int = 0
    other_rank: int | None = None


def moves(ids: Sequence[str], other: Sequence[str]) -> dict[str, Move]:
    """For each id of ``ids`` (rank = position + 1): how it compares with its rank in ``other``."""
    other_rank = {doc: rank for rank, doc in enumerate(other, start=1)}
    out: dict[str, Move] = {}
    for rank, doc in enumerate(ids, start=1):
        there = other_rank.get(doc)
        if there is None:
            out[doc] = Move("only")
        elif there > rank:
            out[doc] = Move("up", there - rank, there)
        elif there < rank:
            out[doc] = Move("down", rank - there, there)
        else:
            out[doc] = Move("same", 0, there)
    return out


@dataclass(frozen=True)
class ScorePart:
    """One signal's share of a hit's fused score (``contribution``), with what it was made of."""

    signal: str
    contribution: float
    raw_score: float | None
    rank: int | None
    normalized: float | None
    weight: float


def score_parts(explanation: HitExplanation | None) -> list[ScorePart]:
    """The signals that made a hit's fused score: lexical, vector, then further signals by name."""
    if explanation is None:
        return []
    legs = {"lexical": explanation.lexical, "vector": explanation.vector, **(explanation.signals or {})}
    return [
        ScorePart(name, leg.contribution, leg.raw_score, leg.rank, leg.normalized, leg.weight)
        for name, leg in legs.items()
        if leg is not None
    ]


@dataclass(frozen=True)
class TimingBar:
    """One stage of the waterfall: it starts ``start_ms`` after the search began and lasts ``ms``."""

    stage: str
    start_ms: float
    ms: float


def timing_bars(timings: SearchTimings) -> list[TimingBar]:
    """The stages that took time: the first trip's side by side from 0, the rest one after the other."""
    first = [TimingBar(stage, 0.0, ms) for stage in FIRST_TRIP if (ms := float(getattr(timings, f"{stage}_ms"))) > 0]
    bars = list(first)
    at = max((bar.ms for bar in first), default=0.0)
    for stage in THEN:
        ms = float(getattr(timings, f"{stage}_ms"))
        if ms > 0:
            bars.append(TimingBar(stage, at, ms))
            at += ms
    return bars


def aggregate_grade(grades: Sequence[int]) -> int:
    """The one grade of several raters: the median, the lower middle one when their count is even."""
    if not grades:
        raise ValueError("no grades to aggregate")
    ordered = sorted(grades)
    return ordered[(len(ordered) - 1) // 2]


def disagreements(by_rater: Mapping[str, Mapping[str, int]]) -> dict[str, dict[str, int]]:
    """``{doc: {rater: grade}}`` -> the documents whose raters gave different grades."""
    return {doc: dict(grades) for doc, grades in by_rater.items() if len(set(grades.values())) > 1}


def ndcg_at(ids: Sequence[str], grades: Mapping[str, int], k: int = 10) -> float | None:
    """nDCG@k of a ranking over graded documents (module docstring); ``None`` without a grade above 0."""
    ideal = sorted((g for g in grades.values() if g > 0), reverse=True)[:k]
    if not ideal:
        return None
    idcg = sum(g / math.log2(i + 2) for i, g in enumerate(ideal))
    dcg = sum(max(grades.get(doc, 0), 0) / math.log2(i + 2) for i, doc in enumerate(ids[:k]))
    return dcg / idcg
