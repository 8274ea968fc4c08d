"""Pure builders of training examples from graded judgments and the index's own candidates.

No I/O, no torch: ids in, ids out (the texts are looked up by the caller), golden-tested.

The grades are ESCI's (BEIR ``qrels`` scores): 3 Exact, 2 Substitute, 1 Complement, 0 Irrelevant; a candidate
the shop never judged for that query counts as 0 ("the rest").

* :func:`embedder_triplets` - ``(query, positive, hard negative)`` for MultipleNegativesRankingLoss: a positive
  is a document graded >= ``min_positive_grade``; its negative is a *mined* candidate (the index's lexical and
  vector legs, best rank first) graded strictly lower, so an Exact is pushed above a Substitute above the rest.
  Each positive of a query takes the next negative in turn, so one query's positives see different negatives.
  The cross-encoder trains on the same triplets, mined from the hybrid window it will rerank (a pointwise
  ``grade / 3`` target let it learn which products are good rather than which match the query; see
  :mod:`connector.train.fit`).
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
    "TripletExample",
    "embedder_triplets",
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
