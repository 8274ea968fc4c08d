"""The shapes of a hybrid search: fusion settings, hits with their explanation, the response.

Pydantic models, so the REST endpoint (``eshybrid serve search``) validates and
serialises the very same objects the library returns.
"""

from __future__ import annotations

import math
import re
import uuid
from collections.abc import Iterable
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from connector.errors import SearchRequestError

__all__ = [
    "FusionConfig",
    "FusionMethod",
    "LegExplanation",
    "HitExplanation",
    "PassageMatch",
    "SearchHit",
    "ExecutedRequest",
    "SearchTimings",
    "SearchResponse",
    "SearchMode",
    "Strategy",
    "Normalizer",
    "MissingPolicy",
    "LegName",
    "SIGNAL_NAME_PATTERN",
    "SEARCH_MODES",
    "LEXICAL_FORMS",
    "LexicalForm",
    "LexicalConfig",
    "DEFAULT_FUSION",
    "CorrectMode",
    "CORRECT_MODES",
    "TermChange",
    "QueryCorrection",
    "FusionWeights",
]

# adaptive: linear whose two leg weights are chosen per query (connector.search.adaptive).
FusionMethod = Literal["rrf", "linear", "adaptive"]
# dbsf: distribution-based score fusion, each leg mapped through its mean +/- 3 std to 0..1.
Normalizer = Literal["min_max", "z_score", "l2", "dbsf", "none"]
# How a document that one leg did not return is scored by normalized linear fusion:
# "zero": that leg contributes 0 (after normalization; with min_max this is the score of
#         the leg's worst candidate) and its weight still counts;
# "ignore": the fused score is the weighted mean over the legs that returned it only.
MissingPolicy = Literal["zero", "ignore"]
LegName = Literal["lexical", "vector"]
# Names of further fusion signals (FusionConfig.weights): "personal", "image", ...
SIGNAL_NAME_PATTERN = r"^[a-z][a-z0-9_]{0,31}$"
_SIGNAL_NAME = re.compile(SIGNAL_NAME_PATTERN)
_LEG_FIELDS = {"lexical": "lexical_weight", "vector": "vector_weight"}


def _empty(value: Any) -> bool:
    return not value


SearchMode = Literal["bm25", "knn", "hybrid", "hybrid+rerank"]
# "auto": a one-request server-side form when the cluster has one that computes exactly
# the configured fusion, else client-side; "client"/"server" force one.
Strategy = Literal["auto", "client", "server"]

SEARCH_MODES: tuple[str, ...] = ("bm25", "knn", "hybrid", "hybrid+rerank")
# How the lexical leg matches the text over several fields: combined_fields (BM25F, the
# fields scored as one) or a multi_match type.
LexicalForm = Literal["combined_fields", "best_fields", "most_fields", "cross_fields"]
LEXICAL_FORMS: tuple[str, ...] = ("combined_fields", "best_fields", "most_fields", "cross_fields")
# Spelling correction of the user's text (connector.search.correction): "off" sends no suggest
# request; "auto" applies a change only when it is confident; "force" applies the best suggestion
# for every rare or absent term (numbers and model codes are never changed in any mode).
CorrectMode = Literal["off", "auto", "force"]
CORRECT_MODES: tuple[str, ...] = ("off", "auto", "force")


class FusionConfig(BaseModel):
    """How the named signals of a search are blended: the lexical and vector legs, and any others.

    The field defaults describe plain RRF (``rank_constant=60``, equal weights; Cormack, Clarke &
    Büttcher, SIGIR 2009); the fusion a search uses when none is named is
    :data:`DEFAULT_FUSION` (query-adaptive min-max linear, base 0.7/0.3, chosen on the dev data) or the index's own
    recommendation. ``normalizer``/``missing`` only matter for ``method="linear"``;
    ``rank_constant`` only for ``"rrf"``.

    Weights are relative: linear fusion divides by their sum, RRF multiplies
    each signal's ``1 / (rank_constant + rank)`` by its weight. ``lexical_weight`` and
    ``vector_weight`` weigh the two legs; ``weights`` weighs further signals by name
    (``{"personal": 0.2}``), which count only in a search that fuses them. ``weights`` may also
    name ``lexical``/``vector``: they are moved to the two fields (a clash is an error), so
    one config has one spelling. A two-leg config (``weights`` empty) serialises exactly as
    before ``weights`` existed.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    method: FusionMethod = Field(
        "rrf", description="rrf | linear (normalized linear combination) | adaptive (linear, leg weights per query)"
    )
    rank_constant: int = Field(60, ge=1, le=10_000, description="RRF k in 1/(k + rank)")
    lexical_weight: float = Field(1.0, ge=0.0, le=1000.0, description="weight of the BM25 leg")
    vector_weight: float = Field(1.0, ge=0.0, le=1000.0, description="weight of the kNN leg")
    normalizer: Normalizer = Field("min_max", description="per-leg score normalizer for linear fusion")
    missing: MissingPolicy = Field("zero", description="how linear fusion scores a doc absent from a leg")
    # Left out of dumps while empty: a two-leg config serialises as it always has (index _meta,
    # search log, REST responses).
    weights: dict[str, float] = Field(
        default_factory=dict,
        description="weights (0..1000) of further signals by name, e.g. {'personal': 0.2}",
        exclude_if=_empty,
    )

    @model_validator(mode="before")
    @classmethod
    def _legs_out_of_weights(cls, data: Any) -> Any:
        if not isinstance(data, dict) or not isinstance(data.get("weights"), dict):
            return data
        weights = dict(data["weights"])
        data = dict(data)
        for leg, field in _LEG_FIELDS.items():
            if leg not in weights:
                continue
            value = weights.pop(leg)
            if field in data and data[field] != value:
                raise ValueError(f"weights[{leg!r}]={value!r} contradicts {field}={data[field]!r}; give one")
            data[field] = value
        data["weights"] = weights
        return data

    @model_validator(mode="after")
    def _check_weights(self) -> FusionConfig:
        for name, value in self.weights.items():
            if not _SIGNAL_NAME.match(name):
                raise ValueError(f"signal name {name!r} must match {SIGNAL_NAME_PATTERN}")
            if not 0.0 <= value <= 1000.0 or math.isnan(value):
                raise ValueError(f"weights[{name!r}] must be within 0..1000, got {value!r}")
        if self.lexical_weight + self.vector_weight + sum(self.weights.values()) <= 0:
            raise ValueError("lexical_weight + vector_weight must be > 0")
        return self

    def weight(self, signal: str) -> float:
        """The weight of one signal: ``lexical_weight``, ``vector_weight`` or ``weights[signal]``.

        Raises:
            SearchRequestError: ``signal`` is neither leg and has no entry in ``weights``.
        """
        if signal == "lexical":
            return self.lexical_weight
        if signal == "vector":
            return self.vector_weight
        weight = self.weights.get(signal)
        if weight is None:
            raise SearchRequestError(
                f"signal {signal!r} has no weight: FusionConfig(weights={{{signal!r}: ...}})",
                field=f"{signal}_weight",
            )
        return weight

    def signal_weights(self, signals: Iterable[str]) -> dict[str, float]:
        """``{signal: weight}`` for the signals one search fuses, in their order."""
        return {name: self.weight(name) for name in signals}

    def with_weights(self, weights: dict[str, float]) -> FusionConfig:
        """A copy with ``weights`` merged in (``lexical``/``vector`` set the two leg fields)."""
        values = self.model_dump()
        values["weights"] = {**self.weights, **weights}
        for leg, field in _LEG_FIELDS.items():
            if leg in weights:
                values[field] = values["weights"].pop(leg)
        return FusionConfig(**values)

    def describe(self) -> str:
        """A short human label, e.g. ``rrf(k=60, w=1/1)`` or ``linear(min_max, w=0.5/0.5, personal=0.2)``."""
        w = f"w={self.lexical_weight:g}/{self.vector_weight:g}"
        w += "".join(f", {name}={value:g}" for name, value in sorted(self.weights.items()))
        if self.method == "rrf":
            return f"rrf(k={self.rank_constant}, {w})"
        missing = "" if self.missing == "zero" else ", missing=ignore"
        if self.method == "adaptive":
            return f"adaptive({self.normalizer}, base {w}{missing})"
        return f"linear({self.normalizer}, {w}{missing})"


class LexicalConfig(BaseModel):
    """How the lexical leg is written; ``None`` fields fall back to the index ``_meta``, then the defaults.

    Defaults (see :func:`connector.search.query_builder.default_lexical_form`): ``combined_fields``
    where the engine has it, else ``cross_fields``; fields from the vector field's ``source_fields``.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    form: LexicalForm | None = Field(None, description="combined_fields | best_fields | most_fields | cross_fields")
    fields: dict[str, float] | None = Field(None, description="field -> boost")
    tie_breaker: float | None = Field(None, ge=0.0, le=1.0, description="multi_match tie breaker")

    def describe(self) -> str:
        """A short label, e.g. ``combined_fields(title^2, text)``."""
        fields = ", ".join(n if b == 1 else f"{n}^{b:g}" for n, b in (self.fields or {}).items()) or "default fields"
        tie = f", tie_breaker={self.tie_breaker:g}" if self.tie_breaker is not None else ""
        return f"{self.form or 'default'}({fields}{tie})"


class LegExplanation(BaseModel):
    """What one leg contributed to a hit's fused score (``None`` fields: the leg missed it)."""

    model_config = ConfigDict(extra="forbid")

    raw_score: float | None = Field(None, description="the score the cluster gave in this leg")
    rank: int | None = Field(None, description="1-based rank in this leg (ties broken by _id)")
    normalized: float | None = Field(None, description="normalized score (linear) or 1/(k+rank) (rrf)")
    weight: float = Field(..., description="the leg's fusion weight")
    contribution: float = Field(0.0, description="what this leg added to the fused score")


class PassageMatch(BaseModel):
    """The passage that scored a document in the kNN leg (from ``inner_hits``; issue 17)."""

    model_config = ConfigDict(extra="forbid")

    start: int | None = Field(None, description="first character of the passage in the document text")
    end: int | None = Field(None, description="one past its last character")
    text: str | None = Field(None, description="the passage as embedded (prefix included)")
    score: float | None = Field(None, description="the passage's kNN score (the document's kNN score)")
    offset: int | None = Field(None, description="its position in the document's passages array")


class HitExplanation(BaseModel):
    """Why a hit sits where it does."""

    model_config = ConfigDict(extra="forbid")

    mode: SearchMode
    strategy: Literal["client", "server", "single"]
    fusion: str | None = Field(None, description="the fusion used, e.g. rrf(k=60, w=1/1)")
    server_form: str | None = Field(None, description="the one-request form, when server-side")
    lexical: LegExplanation | None = None
    vector: LegExplanation | None = None
    signals: dict[str, LegExplanation] | None = Field(
        None,
        description="further fused signals by name (personal, image, ...); absent when none was fused",
        exclude_if=_empty,
    )
    fused_score: float
    rerank_score: float | None = Field(None, description="the reranker's score, when reranked")
    passage: PassageMatch | None = Field(
        None,
        description="the passage that scored the kNN leg (a passages field); absent otherwise",
        exclude_if=_empty,
    )
    affinities: dict[str, float] | None = Field(
        None,
        description="the shopper's affinities that moved this hit (field=value: affinity); absent otherwise",
        exclude_if=_empty,
    )


class SearchHit(BaseModel):
    """One result."""

    model_config = ConfigDict(extra="forbid")

    id: str
    index: str
    rank: int = Field(..., description="1-based position in the whole (fused) ranking")
    score: float = Field(..., description="the fused score (or the rerank score when reranked)")
    source: dict[str, Any] | None = None
    explanation: HitExplanation | None = None


class ExecutedRequest(BaseModel):
    """One request as it was sent, for the Dev Tools console rendering."""

    model_config = ConfigDict(extra="forbid")

    method: str
    path: str = Field(..., description="path without the leading slash, e.g. my-index/_msearch")
    params: dict[str, str] = Field(default_factory=dict)
    body: dict[str, Any] | None = None
    ndjson: list[dict[str, Any]] | None = Field(None, description="lines of an ndjson body (_msearch)")
    note: str | None = Field(None, description="a comment shown above the request")


class SearchTimings(BaseModel):
    """Where the time went, in milliseconds (query embedding apart from the cluster)."""

    model_config = ConfigDict(extra="forbid")

    embed_ms: float = 0.0
    search_ms: float = 0.0
    fuse_ms: float = 0.0
    fetch_ms: float = 0.0
    rerank_ms: float = 0.0
    correct_ms: float = 0.0
    total_ms: float = 0.0


class TermChange(BaseModel):
    """One word of the user's text the correction looked at, and what it decided."""

    model_config = ConfigDict(extra="forbid")

    original: str = Field(..., description="the word as the user typed it")
    suggestion: str = Field(..., description="the index's best suggestion for it")
    applied: bool = Field(..., description="whether the searched text uses the suggestion")
    reason: str = Field(..., description="why it was (not) applied")
    original_doc_freq: int | None = Field(None, description="documents matching the original word")
    suggestion_doc_freq: int | None = Field(None, description="documents holding the suggestion")
    score: float | None = Field(None, description="the suggester's similarity (term suggester)")


class FusionWeights(BaseModel):
    """The leg weights the adaptive fusion chose for one query, and why (``connector.search.adaptive``)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    lexical: float = Field(..., description="the lexical leg's share of the two legs' weight")
    vector: float = Field(..., description="the vector leg's share")
    base_share: float = Field(..., description="the lexical share when every content word is in the index")
    content_words: list[str] = Field(default_factory=list, description="the query's words, stopwords out")
    absent_words: list[str] = Field(default_factory=list, description="content words no document contains")
    coverage: float | None = Field(None, description="share of the counted content words in the index")
    has_code: bool = Field(False, description="a word with a digit (a size, number or model code)")
    agreement: float | None = Field(None, description="overlap of the legs' top k")
    vector_top: float | None = Field(None, description="the vector leg's best score")
    vector_gap: float | None = Field(None, description="its best score minus the mean of the rest of its top k")
    coefficients: dict[str, float] = Field(default_factory=dict, description="the rule's numbers")
    reasons: list[str] = Field(default_factory=list)
    summary: str = Field("", description="one line: the weights and the reasons")


class QueryCorrection(BaseModel):
    """What query understanding did to the user's text before the legs ran."""

    model_config = ConfigDict(extra="forbid")

    mode: CorrectMode
    suggester: Literal["term", "phrase", "none"] = Field("none", description="the suggester that was asked")
    searched: str = Field(..., description="the text the dense leg embedded (the corrected or rewritten text)")
    lexical_text: str = Field(..., description="the text the lexical leg searched (original + corrected words)")
    did_you_mean: str | None = Field(None, description="the text with every plausible suggestion (applied or not)")
    changes: list[TermChange] = Field(default_factory=list)
    error: str | None = Field(None, description="the suggest request failed; the original text was searched")
    rewritten: str | None = Field(None, description="the query rewriter's output, when one ran and changed the text")
    rewrite_fallback: bool = Field(False, description="the rewriter failed or ran over budget; original text used")
    rewrite_fallback_reason: str | None = None
    word_doc_freqs: dict[str, int] | None = Field(
        None, description="documents matching each content word of the query (the adaptive fusion's evidence)"
    )
    took_ms: float = 0.0


class SearchResponse(BaseModel):
    """The answer to one search: a page of hits plus how it was computed."""

    model_config = ConfigDict(extra="forbid")

    query_id: str = Field(
        default_factory=lambda: str(uuid.uuid4()),
        description="a UUID of this search: the key the shoppers' events (clicks, orders) join on",
    )
    index: str
    query: str
    mode: SearchMode
    strategy: Literal["client", "server", "single"]
    server_form: str | None = None
    fusion: FusionConfig | None = None
    fusion_weights: FusionWeights | None = Field(
        None, description="adaptive fusion: the weights chosen for this query, the evidence and the reasons"
    )
    page: int
    size: int
    max_depth: int
    candidates: int | None = Field(
        None, description="documents in the fused ranking before paging (None: fused by the cluster)"
    )
    hits: list[SearchHit]
    reranked: bool = False
    rerank_fallback: bool = Field(False, description="the reranker failed; hits are in fused order")
    rerank_fallback_reason: str | None = Field(None, description="why the reranker was not used")
    vector_fallback: bool = Field(
        False, description="a helper (query or image embedder, profile read) failed; its signal was left out"
    )
    vector_fallback_reason: str | None = Field(None, description="which helper failed, and why")
    round_trips: int = Field(0, description="sequential cluster round trips this search made")
    shards_failed: int = Field(
        0,
        description="shards missing from the cluster's answers, summed over the search's requests (every copy "
        "of them was unavailable): when > 0 the hits are a partial answer",
        exclude_if=_empty,
    )
    corrected_query: str | None = Field(None, description="the corrected text the search used (None: unchanged)")
    did_you_mean: str | None = Field(None, description="a suggestion to show the user (applied or not)")
    correction: QueryCorrection | None = Field(None, description="what the spelling correction did, term by term")
    timings: SearchTimings = Field(default_factory=SearchTimings)
    requests: list[ExecutedRequest] = Field(default_factory=list)
    user: str | None = Field(None, description="the shopper whose profile was asked for", exclude_if=_empty)
    personal_weight: float | None = Field(
        None,
        description="the personal signal's effective weight, when fused (absent: not personalized)",
        exclude_if=lambda value: value is None,
    )

    @property
    def ids(self) -> list[str]:
        """The hit ids, in order."""
        return [hit.id for hit in self.hits]


# The library's default fusion, used when neither the caller nor the index (``eshybrid tune``)
# names one: query-adaptive (issue 23), min-max normalized linear fusion whose lexical share is
# chosen per query, 0.7 x coverage^3 (coverage: the share of the query's content words the index
# holds; connector.search.adaptive). Its base 0.7/0.3 is the fixed linear fusion chosen before on
# the ESCI dev queries by the rule of connector.quality.selection (min-max, tuned share, held in
# 98-100% of 1000 bootstrap resamples); the coverage power was chosen on the dev data only (ESCI dev
# and the catalogue's descriptive queries, ES 9 and OpenSearch 3) by the rule written in
# connector.quality.adaptive_choice before the run. Client-side only: no engine weighs the legs
# per query in one request.
DEFAULT_FUSION = FusionConfig(method="adaptive", normalizer="min_max", lexical_weight=0.7, vector_weight=0.3)
