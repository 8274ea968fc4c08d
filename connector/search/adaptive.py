"""Query-adaptive fusion: per query, how much each leg is trusted, from evidence in what the search already has.

A fixed lexical/vector weight serves one kind of query. On keyword queries ("1/2 pvc coupling
without stop") every word is in the catalogue's vocabulary and the lexical leg is the better
judge; on descriptive queries in a shopper's own words ("flashlight you wear on your head") most
words are absent from the catalogue, the lexical leg's best hit matched an incidental word, and
min-max normalization still gives it 1.0. This module decides per query, explainably.

The evidence (:class:`QueryEvidence`) comes only from what the search already fetches: the
query's words and, when the spelling correction ran, the number of documents matching each
content word (the ``filters`` aggregation that rides in the correction's suggest request, see
:func:`connector.search.correction.suggest_body`; a corrected word counts as its correction), plus
the legs' own hits. With the correction off the same counts are asked alone in the first round trip, beside the
query's embedding (:func:`connector.search.correction.word_counts_body`); when they fail the lexical leg keeps its
base share.

The rule (:func:`adaptive_weights`), with the coefficients in :class:`AdaptiveCoefficients`:

* ``coverage`` = share of the query's content words (stopwords out) that occur in at least one
  document of the index. Unknown (``None``) when the words were not counted (the count failed):
  then the lexical leg keeps its base weight.
* lexical share = ``base_share * coverage ** coverage_power``, where ``base_share`` is the
  configured ``lexical_weight / (lexical_weight + vector_weight)`` (0.7 by default, the share
  chosen on keyword queries when every word is in the index) and ``coverage_power`` is 3: a query
  with one word of three unknown to the index gives the lexical leg 0.7 * (2/3)^3 = 0.21;
* a query with a code or number (a digit in a word) that the index contains keeps at least
  ``base_share``: codes are what the lexical leg is for;
* the vector leg gets ``1 - share``; the legs are min-max normalized and combined linearly
  (missing = zero), exactly as :func:`connector.search.fusion.linear_fuse` does.

The legs' agreement (overlap of their top ``agreement_k``) and the vector leg's confidence (its
top similarity and the gap to the rest) are measured and shown with the weights; they do not
move the weights in the default coefficients (``agreement_weight`` 0).

The default (base 0.7/0.3, ``coverage_power`` 3, ``agreement_weight`` 0) was chosen on the dev
data only, by the rule written in :mod:`connector.quality.adaptive_choice` before the run, out of
24 candidates (base 0.6/0.7/0.8 x power 0.5/1/2/3 x agreement 0/0.5), bench/hybrid_quality.py
2026-12-06, ES 9 (standard analyzer: no stemming) and OpenSearch 3 (English analyzer): its worst
margin over the better leg was -0.0011 (ESCI dev 0.7277 / 0.7420 vs 0.6942 / 0.7151; catalogue
descriptive 0.8897 / 0.8895 vs kNN 0.8906). Power 3 is the edge of that grid: a steeper power was
not tried (the grid was fixed before the run).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from connector.search.models import FusionConfig, FusionWeights
from connector.search.words import STOPWORDS, content_words

__all__ = [
    "STOPWORDS",
    "AdaptiveCoefficients",
    "DEFAULT_COEFFICIENTS",
    "QueryEvidence",
    "AdaptiveWeights",
    "content_words",
    "adaptive_weights",
    "adaptive_leg_weights",
]


class _Hit(Protocol):  # a leg hit (connector.search.fusion.LegHit): only its id and score are read
    @property
    def id(self) -> str: ...

    @property
    def score(self) -> float: ...


def _ranked(hits: Sequence[_Hit]) -> list[_Hit]:
    # the legs' order of connector.search.fusion.rank_leg: score descending, then _id
    return sorted(hits, key=lambda h: (-h.score, h.id))


@dataclass(frozen=True)
class AdaptiveCoefficients:
    """The numbers of the rule (module docstring); shown by explain with every decision."""

    coverage_power: float = 3.0
    agreement_k: int = 10
    agreement_weight: float = 0.0  # share moved toward the vector leg when the legs disagree (0: measured only)
    code_keeps_base: bool = True


DEFAULT_COEFFICIENTS = AdaptiveCoefficients()


@dataclass(frozen=True)
class QueryEvidence:
    """What the search knows about the query before fusing, besides the legs' hits.

    Attributes:
        text: the user's text.
        doc_freqs: lower-cased word -> documents of the index matching it (the correction's
            aggregation, or the counts alone with the correction off); ``None`` when the words were not
            counted (the request failed). Words absent from the mapping count as not counted.
    """

    text: str
    doc_freqs: Mapping[str, int] | None = None


@dataclass(frozen=True)
class AdaptiveWeights:
    """The weights chosen for one query, with the evidence and the reasons (explain shows it)."""

    lexical: float
    vector: float
    base_share: float
    words: tuple[str, ...]
    absent: tuple[str, ...]
    coverage: float | None
    has_code: bool
    agreement: float | None
    vector_top: float | None
    vector_gap: float | None
    reasons: tuple[str, ...]
    coefficients: AdaptiveCoefficients = field(default=DEFAULT_COEFFICIENTS)

    def describe(self) -> str:
        """One line: ``lexical 0.23 / vector 0.77: ...reasons``."""
        return f"lexical {self.lexical:.2f} / vector {self.vector:.2f}: " + "; ".join(self.reasons)

    def to_model(self) -> FusionWeights:
        """The response's form (``SearchResponse.fusion_weights``)."""
        c = self.coefficients
        return FusionWeights(
            lexical=self.lexical,
            vector=self.vector,
            base_share=self.base_share,
            content_words=list(self.words),
            absent_words=list(self.absent),
            coverage=self.coverage,
            has_code=self.has_code,
            agreement=self.agreement,
            vector_top=self.vector_top,
            vector_gap=self.vector_gap,
            coefficients={
                "coverage_power": c.coverage_power,
                "agreement_k": float(c.agreement_k),
                "agreement_weight": c.agreement_weight,
                "code_keeps_base": float(c.code_keeps_base),
            },
            reasons=list(self.reasons),
            summary=self.describe(),
        )


def _agreement(legs: Mapping[str, Sequence[_Hit]], k: int) -> float | None:
    lexical, vector = legs.get("lexical"), legs.get("vector")
    if not lexical or not vector:
        return None
    top_l = {h.id for h in _ranked(lexical)[:k]}
    top_v = {h.id for h in _ranked(vector)[:k]}
    return len(top_l & top_v) / max(1, min(k, len(top_l), len(top_v)))


def _vector_confidence(hits: Sequence[_Hit] | None, k: int) -> tuple[float | None, float | None]:
    if not hits:
        return None, None
    ranked = _ranked(hits)[:k]
    top = ranked[0].score
    rest = [h.score for h in ranked[1:]]
    return top, (top - sum(rest) / len(rest)) if rest else None


def adaptive_weights(
    legs: Mapping[str, Sequence[_Hit]],
    evidence: QueryEvidence | None,
    config: FusionConfig,
    *,
    coefficients: AdaptiveCoefficients = DEFAULT_COEFFICIENTS,
) -> AdaptiveWeights:
    """The lexical and vector weights (summing to 1) for this query, and why (module docstring)."""
    base = config.lexical_weight / (config.lexical_weight + config.vector_weight)
    words, has_code = content_words(evidence.text) if evidence is not None else ([], False)
    freqs = evidence.doc_freqs if evidence is not None else None
    counted = [w for w in words if freqs is not None and w in freqs]
    absent = tuple(w for w in counted if (freqs or {})[w] == 0)
    coverage = 1 - len(absent) / len(counted) if counted else None
    agreement = _agreement(legs, coefficients.agreement_k)
    top, gap = _vector_confidence(legs.get("vector"), coefficients.agreement_k)
    reasons: list[str] = []
    share = base
    if coverage is None:
        reasons.append(f"the query's words were not counted: base share {base:.2f}")
    else:
        share = base * coverage**coefficients.coverage_power
        where = f"{', '.join(absent)} absent from the index" if absent else "every content word is in the index"
        reasons.append(f"coverage {coverage:.2f} of {len(counted)} content words ({where})")
    codes_found = has_code and any(any(c.isdigit() for c in w) and (freqs or {}).get(w, 0) > 0 for w in counted)
    if coefficients.code_keeps_base and codes_found and share < base:
        share = base
        reasons.append("a code or number of the query is in the index: lexical keeps its base share")
    if agreement is not None and coefficients.agreement_weight > 0:
        moved = coefficients.agreement_weight * (1 - agreement) * share
        share -= moved
        reasons.append(f"legs agree on {agreement:.0%} of their top {coefficients.agreement_k}: -{moved:.2f}")
    elif agreement is not None:
        reasons.append(f"legs agree on {agreement:.0%} of their top {coefficients.agreement_k}")
    share = min(1.0, max(0.0, share))
    return AdaptiveWeights(
        lexical=share,
        vector=1 - share,
        base_share=base,
        words=tuple(words),
        absent=absent,
        coverage=coverage,
        has_code=has_code,
        agreement=agreement,
        vector_top=top,
        vector_gap=gap,
        reasons=tuple(reasons),
        coefficients=coefficients,
    )


def adaptive_leg_weights(signals: Sequence[str], chosen: AdaptiveWeights, config: FusionConfig) -> dict[str, float]:
    """The weight of every fused signal: the two legs share their configured total as ``chosen``
    says; further signals (``personal``, ``image``) keep their configured weight beside them."""
    total = config.lexical_weight + config.vector_weight
    weights: dict[str, float] = {}
    for name in signals:
        if name == "lexical":
            weights[name] = chosen.lexical * total
        elif name == "vector":
            weights[name] = chosen.vector * total
        else:
            weights[name] = config.weight(name)
    return weights
