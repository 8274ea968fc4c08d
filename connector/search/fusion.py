"""Fusion of named ranked signals: reciprocal rank fusion and normalized linear combination.

A signal is one ranked list of (id, score) with a name: the ``lexical`` and ``vector`` legs,
and any number of others (``personal``, ``image``, ...). Every function takes
``{name: hits}`` and treats all signals alike, so "leg" below means any signal; iterating
the mapping in its order fixes the order of the float sums (two-leg results are pinned
bit for bit by tests/unit/golden/fusion_two_leg_*.json).

Normalizers of the linear combination: min-max, z-score, l2 and DBSF (mean +/- 3 std);
each is the same arithmetic the server-side forms use where a server has them.

Pure functions over plain data, unit-tested without a cluster. Every leg is
first put in a deterministic order (score descending, then ``_id`` ascending),
so equal scores never make two runs of the same query disagree, and ranks are
1-based.

Documents missing from a leg are handled explicitly:

* RRF: the leg contributes nothing (``0``) for that document; ranks beyond a
  leg's depth are unknown, not guessed.
* linear: ``missing="zero"`` (default) scores the absent leg as ``0`` after
  normalization while its weight still counts (with ``min_max`` this equals the
  leg's worst candidate); ``missing="ignore"`` takes the weighted mean over the
  legs that returned the document only (how OpenSearch 2.x's
  ``arithmetic_mean`` treated absent sub-query scores).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

from connector.errors import SearchRequestError
from connector.search.adaptive import (
    DEFAULT_COEFFICIENTS,
    AdaptiveCoefficients,
    AdaptiveWeights,
    QueryEvidence,
    adaptive_leg_weights,
    adaptive_weights,
)
from connector.search.models import FusionConfig, MissingPolicy, Normalizer

_TIE_DECIMALS = 12

__all__ = [
    "LegHit",
    "LegScore",
    "FusedDoc",
    "leg_hits",
    "rank_leg",
    "normalize",
    "rrf_fuse",
    "linear_fuse",
    "single_leg",
    "fuse",
    "fuse_explained",
]


# Builds a NamedTuple from a plain tuple without its Python-level __new__ (fusion's hot loop).
_tuple_new = tuple.__new__


# NamedTuples: immutable like frozen dataclasses, and about ten times cheaper to build (a
# hybrid search builds several hundred of them per query).
class LegHit(NamedTuple):
    """One hit of one leg as the cluster returned it."""

    id: str
    score: float
    # The hit's _index; the field shadows tuple.index(), which nobody calls on a hit.
    index: str = ""  # type: ignore[assignment]
    routing: str | None = None


class LegScore(NamedTuple):
    """What one leg says about one fused document."""

    raw_score: float
    rank: int
    normalized: float
    weight: float
    contribution: float


class FusedDoc(NamedTuple):
    """One document of a fused ranking; ``legs`` holds only the legs that returned it."""

    id: str
    score: float
    hit: LegHit
    legs: Mapping[str, LegScore]


def leg_hits(response: Mapping[str, Any]) -> list[LegHit]:
    """The hits of one leg's search response, in the order the cluster returned them."""
    return [
        _tuple_new(LegHit, (str(h["_id"]), float(h["_score"] or 0.0), str(h.get("_index", "")), h.get("_routing")))
        for h in (response.get("hits") or {}).get("hits") or []
    ]


def rank_leg(hits: Sequence[LegHit]) -> list[LegHit]:
    """Order one leg by score (descending) then ``_id``; keep the first hit of a repeated id."""
    seen: set[str] = set()
    ranked: list[LegHit] = []
    for hit in sorted(hits, key=_leg_order):
        if hit.id not in seen:
            seen.add(hit.id)
            ranked.append(hit)
    return ranked


def normalize(scores: Sequence[float], normalizer: Normalizer) -> list[float]:
    """Normalize one leg's scores.

    * ``min_max``: ``(s - min) / (max - min)``; when all scores are equal each becomes ``1.0``
      (a lone candidate is its leg's best, as OpenSearch's min_max has it).
    * ``z_score``: ``(s - mean) / std`` (population std); all ``0.0`` when std is 0.
    * ``l2``: ``s / sqrt(sum(s^2))``; all ``0.0`` when every score is 0.
    * ``dbsf`` (distribution-based score fusion): ``(s - (mean - 3 std)) / (6 std)`` clipped to
      ``0..1`` (population std): an outlier at the top no longer squeezes the rest of the leg
      as it does with ``min_max``; all ``0.5`` (the mean) when std is 0.
    * ``none``: the raw scores.
    """
    values = [float(s) for s in scores]
    if not values or normalizer == "none":
        return values
    if normalizer == "min_max":
        low, high = min(values), max(values)
        if high == low:
            return [1.0] * len(values)
        return [(s - low) / (high - low) for s in values]
    if normalizer == "z_score":
        mean = math.fsum(values) / len(values)
        std = math.sqrt(math.fsum((s - mean) ** 2 for s in values) / len(values))
        return [0.0] * len(values) if std == 0 else [(s - mean) / std for s in values]
    if normalizer == "dbsf":
        mean = math.fsum(values) / len(values)
        std = math.sqrt(math.fsum((s - mean) ** 2 for s in values) / len(values))
        if std == 0:
            return [0.5] * len(values)
        low = mean - 3 * std
        return [min(1.0, max(0.0, (s - low) / (6 * std))) for s in values]
    if normalizer == "l2":
        norm = math.sqrt(math.fsum(s * s for s in values))
        return [0.0] * len(values) if norm == 0 else [s / norm for s in values]
    raise SearchRequestError(f"unknown normalizer {normalizer!r}", field="normalizer")


def _check_weights(legs: Mapping[str, Sequence[LegHit]], weights: Mapping[str, float]) -> None:
    for name in legs:
        weight = weights.get(name)
        if weight is None or weight < 0 or math.isnan(weight):
            raise SearchRequestError(f"leg {name!r} needs a weight >= 0 (got {weight!r})", field=f"{name}_weight")


def _leg_order(hit: LegHit) -> tuple[float, str]:
    return -hit.score, hit.id


def _fused_order(doc: FusedDoc) -> tuple[float, str]:
    # Scores equal in exact arithmetic can differ in the last bits (0.8-0.7 vs 0.5): round
    # before comparing, so such ties also fall to the _id rule.
    return -round(doc[1], _TIE_DECIMALS), doc[0]


def _sorted(docs: list[FusedDoc]) -> list[FusedDoc]:
    return sorted(docs, key=_fused_order)


def rrf_fuse(
    legs: Mapping[str, Sequence[LegHit]],
    *,
    rank_constant: int = 60,
    weights: Mapping[str, float],
) -> list[FusedDoc]:
    """Reciprocal rank fusion: ``score(d) = sum_signal weight_s / (rank_constant + rank_s(d))``.

    Args:
        legs: signal name -> that signal's hits (any order; re-ranked by score then ``_id``).
        rank_constant: ``k`` in ``1 / (k + rank)``; larger values flatten the head.
        weights: leg name -> weight (``>= 0``).

    Returns:
        Fused documents, best first, ties broken by ``_id``.

    Raises:
        SearchRequestError: a weight is missing or negative, or ``rank_constant < 1``.
    """
    if rank_constant < 1:
        raise SearchRequestError(f"rank_constant must be >= 1, got {rank_constant}", field="rank_constant")
    _check_weights(legs, weights)
    per_doc: dict[str, dict[str, LegScore]] = {}
    first_hit: dict[str, LegHit] = {}
    totals: dict[str, float] = {}
    for name, hits in legs.items():
        weight = float(weights[name])
        for rank, hit in enumerate(rank_leg(hits), start=1):
            reciprocal = 1.0 / (rank_constant + rank)
            contribution = weight * reciprocal
            doc_id = hit[0]
            score = _tuple_new(LegScore, (hit[1], rank, reciprocal, weight, contribution))
            scores = per_doc.get(doc_id)
            if scores is None:
                per_doc[doc_id] = {name: score}
                first_hit[doc_id] = hit
                totals[doc_id] = contribution
            else:
                scores[name] = score
                totals[doc_id] += contribution
    return _sorted(
        [
            _tuple_new(FusedDoc, (doc_id, totals[doc_id], first_hit[doc_id], scores))
            for doc_id, scores in per_doc.items()
        ]
    )


def linear_fuse(
    legs: Mapping[str, Sequence[LegHit]],
    *,
    normalizer: Normalizer = "min_max",
    weights: Mapping[str, float],
    missing: MissingPolicy = "zero",
) -> list[FusedDoc]:
    """Normalized linear combination: ``score(d) = sum_signal w_s * norm_s(d) / sum(w)``.

    Each leg is normalized over the candidates it returned (its depth), then
    combined. See the module docstring for ``missing``.

    Args:
        legs: signal name -> that signal's hits.
        normalizer: ``min_max`` | ``z_score`` | ``l2`` | ``dbsf`` | ``none``.
        weights: signal name -> weight (``>= 0``); only their ratio matters.
        missing: ``zero`` or ``ignore``.

    Returns:
        Fused documents, best first, ties broken by ``_id``.

    Raises:
        SearchRequestError: bad weights, normalizer or missing policy.
    """
    if missing not in ("zero", "ignore"):
        raise SearchRequestError(f"missing must be 'zero' or 'ignore', got {missing!r}", field="missing")
    _check_weights(legs, weights)
    per_doc: dict[str, dict[str, LegScore]] = {}
    first_hit: dict[str, LegHit] = {}
    for name, hits in legs.items():
        ranked = rank_leg(hits)
        weight = float(weights[name])
        for rank, (hit, norm) in enumerate(zip(ranked, normalize([h.score for h in ranked], normalizer)), 1):
            doc_id = hit[0]
            score = _tuple_new(LegScore, (hit[1], rank, norm, weight, weight * norm))
            scores = per_doc.get(doc_id)
            if scores is None:
                per_doc[doc_id] = {name: score}
                first_hit[doc_id] = hit
            else:
                scores[name] = score
    total_weight = sum(float(weights[name]) for name in legs)
    fused: list[FusedDoc] = []
    for doc_id, scores in per_doc.items():
        numerator = 0.0
        denominator = 0.0
        for leg_score in scores.values():
            numerator += leg_score[4]
            denominator += leg_score[3]
        if missing == "zero":
            denominator = total_weight
        fused.append(
            _tuple_new(
                FusedDoc, (doc_id, numerator / denominator if denominator > 0 else 0.0, first_hit[doc_id], scores)
            )
        )
    return _sorted(fused)


def single_leg(hits: Sequence[LegHit], *, leg: str) -> list[FusedDoc]:
    """One leg alone (``bm25`` or ``knn`` mode) as a ranking: raw scores, ties by ``_id``."""
    return [
        FusedDoc(hit.id, hit.score, hit, {leg: LegScore(hit.score, rank, hit.score, 1.0, hit.score)})
        for rank, hit in enumerate(rank_leg(hits), start=1)
    ]


def fuse(
    legs: Mapping[str, Sequence[LegHit]], config: FusionConfig, *, evidence: QueryEvidence | None = None
) -> list[FusedDoc]:
    """Fuse named signals (``{"lexical": [...], "vector": [...], "personal": [...]}``) as ``config`` says.

    Each signal's weight is :meth:`FusionConfig.weight` of its name; the method (RRF, linear with
    its normalizer and missing policy, or ``adaptive``: linear with this query's leg weights, see
    :mod:`connector.search.adaptive`) applies to every signal alike.

    Args:
        legs: signal name -> that signal's hits.
        config: the fusion.
        evidence: what the search knows about the query (``adaptive`` only; ``None``: the legs alone).

    Raises:
        SearchRequestError: a signal has no weight in ``config``, or a weight is invalid.
    """
    return fuse_explained(legs, config, evidence=evidence)[0]


def fuse_explained(
    legs: Mapping[str, Sequence[LegHit]],
    config: FusionConfig,
    *,
    evidence: QueryEvidence | None = None,
    coefficients: AdaptiveCoefficients = DEFAULT_COEFFICIENTS,
) -> tuple[list[FusedDoc], AdaptiveWeights | None]:
    """:func:`fuse`, plus the weights ``adaptive`` chose for this query and why (``None`` for rrf/linear).

    ``coefficients``: the adaptive rule's numbers (the default's; other values for the bench's grid).
    """
    if config.method == "adaptive":
        chosen = adaptive_weights(legs, evidence, config, coefficients=coefficients)
        weights = adaptive_leg_weights(list(legs), chosen, config)
        return linear_fuse(legs, normalizer=config.normalizer, weights=weights, missing=config.missing), chosen
    weights = config.signal_weights(legs)
    if config.method == "rrf":
        return rrf_fuse(legs, rank_constant=config.rank_constant, weights=weights), None
    return linear_fuse(legs, normalizer=config.normalizer, weights=weights, missing=config.missing), None
