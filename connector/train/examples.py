"""Pure builders of training examples from graded judgments and the index's own candidates.

No I/O, no torch: ids in, ids out (the texts are looked up by the caller), golden-tested.

The grades are ESCI's (BEIR ``qrels`` scores): 3 Exact, 2 Substitute, 1 Complement, 0 Irrelevant; a candidate
the shop never judged for that query counts as 0 ("the rest").

* :func:`embedder_triplets` - ``(query, positive, hard negative)`` for MultipleNegativesRankingLoss: a positive
  is a document graded >= ``min_positive_grade``; its negative is a *mined* candidate (the index's lexical and
  vector legs, best rank first) graded strictly lower, so an Exact is pushed above a Substitute above the rest.
  Each positive of a query takes the next negative in turn, so one query's positives see different negatives.
* :func:`reranker_pairs` - pointwise ``(query, document, label)`` for the cross-encoder: every candidate of the
  hybrid window plus every judged document, labelled ``grade / max_grade`` (a soft binary cross-entropy target).
* :func:`shuffled_qrels` - the same grades dealt to other documents (a model made worse on purpose: the gate's
  negative control).
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from connector.errors import ConfigError

__all__ = [
    "MAX_GRADE",
    "PairExample",
    "TripletExample",
    "embedder_triplets",
    "reranker_pairs",
    "shuffled_qrels",
]

MAX_GRADE = 3
Qrels = Mapping[str, Mapping[str, int]]


@dataclass(frozen=True)
class TripletExample:
    """One ``(query, positive, negative)`` example; ids, with the grades that made it."""

    query_id: str
    positive_id: str
    negative_id: str
    positive_grade: int
    negative_grade: int


@dataclass(frozen=True)
class PairExample:
    """One ``(query, document, label)`` example; ``label`` in [0, 1]."""

    query_id: str
    doc_id: str
    label: float


def _ordered_positives(grades: Mapping[str, int], rank: Mapping[str, int], min_grade: int) -> list[str]:
    # Best grade first; among equals the one the index already ranks higher, then the id (stable, seed-free).
    chosen = [doc for doc, grade in grades.items() if grade >= min_grade]
    return sorted(chosen, key=lambda doc: (-grades[doc], rank.get(doc, len(rank)), doc))


def embedder_triplets(
    query_ids: Sequence[str],
    qrels: Qrels,
    candidates: Mapping[str, Sequence[str]],
    *,
    min_positive_grade: int = 2,
    max_positives_per_query: int = 16,
) -> list[TripletExample]:
    """Graded hard-negative triplets for the queries of ``query_ids`` (the training side of the split).

    Args:
        query_ids: the training queries.
        qrels: ``{query_id: {doc_id: grade}}``.
        candidates: ``{query_id: [doc_id, ...]}`` mined from the index, best first (lexical and vector legs
            interleaved by the caller); a query without candidates gives no triplet.
        min_positive_grade: the lowest grade used as a positive (2: Exact and Substitute).
        max_positives_per_query: caps one query's share, so queries with many judgments do not dominate.

    Returns:
        Triplets in query order; a positive with no lower-graded candidate is left out.
    """
    if max_positives_per_query < 1:
        raise ConfigError("max_positives_per_query must be >= 1", field="max_positives_per_query")
    out: list[TripletExample] = []
    for qid in query_ids:
        grades = qrels.get(qid, {})
        mined = list(dict.fromkeys(candidates.get(qid, ())))
        rank = {doc: i for i, doc in enumerate(mined)}
        positives = _ordered_positives(grades, rank, min_positive_grade)[:max_positives_per_query]
        used: dict[int, int] = {}  # grade of the positive -> how many of its eligible negatives were taken
        for positive in positives:
            grade = grades[positive]
            eligible = [doc for doc in mined if grades.get(doc, 0) < grade]
            if not eligible:
                continue
            turn = used.get(grade, 0)
            used[grade] = turn + 1
            negative = eligible[turn % len(eligible)]
            out.append(TripletExample(qid, positive, negative, grade, grades.get(negative, 0)))
    return out


def reranker_pairs(
    query_ids: Sequence[str],
    qrels: Qrels,
    candidates: Mapping[str, Sequence[str]],
    *,
    max_pairs_per_query: int = 64,
) -> list[PairExample]:
    """Pointwise graded pairs: the hybrid window's candidates first (the distribution the reranker sees), then
    the judged documents outside it, at most ``max_pairs_per_query`` per query.

    Returns:
        Pairs in query order, labels ``grade / MAX_GRADE`` (an unjudged candidate is 0).
    """
    if max_pairs_per_query < 2:
        raise ConfigError("max_pairs_per_query must be >= 2", field="max_pairs_per_query")
    out: list[PairExample] = []
    for qid in query_ids:
        grades = qrels.get(qid, {})
        window = list(dict.fromkeys(candidates.get(qid, ())))
        judged_outside = sorted((d for d in grades if d not in set(window)), key=lambda d: (-grades[d], d))
        # Keep the judged positives outside the window before its unjudged tail: they are what it missed.
        room = max_pairs_per_query - len(window)
        if room < 0:
            window = window[:max_pairs_per_query]
            room = 0
        docs = window + judged_outside[:room]
        out.extend(PairExample(qid, doc, grades.get(doc, 0) / MAX_GRADE) for doc in docs)
    return out


def shuffled_qrels(qrels: Qrels, *, seed: int) -> dict[str, dict[str, int]]:
    """Each query's grades dealt to documents drawn from the whole judged pool (seeded): labels that mean nothing."""
    pool = sorted({doc for grades in qrels.values() for doc in grades})
    rng = random.Random(seed)
    out: dict[str, dict[str, int]] = {}
    for qid in sorted(qrels):
        grades = [qrels[qid][doc] for doc in sorted(qrels[qid])]
        docs = rng.sample(pool, len(grades))
        out[qid] = dict(zip(docs, grades))
    return out
