"""The options of a search object (what ``HybridSearch(...)`` takes besides the cluster and index), validated once.

Both facades take the same keyword arguments and build one :class:`SearchOptions`; the core reads only this.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from connector.errors import ConfigError, SearchRequestError
from connector.search.correction import DEFAULT_CORRECT, DEFAULT_CORRECTION, CorrectionSettings, validate_correct_mode
from connector.search.images import ImageSignal
from connector.search.models import CorrectMode, FusionConfig, LexicalForm, Strategy
from connector.search.query_vectors import Embedder
from connector.search.rerank import RerankConfig
from connector.search.rewrite import QueryRewriter, TimedRewriter
from connector.ubi.logger import UbiLogger
from mappings.system import profiles_index_name

__all__ = ["DEFAULT_EMBED_BUDGET_S", "Reranker", "SearchOptions", "search_options"]


class _SearchPathEnv(BaseSettings):
    """The library's default embedding budget, from the same variable as ``serve search`` reads."""

    model_config = SettingsConfigDict(env_prefix="ESHYBRID_SEARCH_", extra="ignore")

    # A short query embeds in ~25 ms over HTTP on the 2-core dev machine (issue 24); 200 ms is ~8x that, so only a
    # stalled or down embedder reaches it. ESHYBRID_SEARCH_EMBED_BUDGET_S moves it for every search object that
    # names none (a loaded test machine, a slow network to the service).
    embed_budget_s: float = Field(0.2, gt=0, le=60, description="the search path's query embedding budget (s)")


# The search path's embedding budget (read once, at import).
DEFAULT_EMBED_BUDGET_S = _SearchPathEnv().embed_budget_s
DEFAULT_BREAKER_FAILURES = 3
DEFAULT_BREAKER_OPEN_S = 5.0


@runtime_checkable
class Reranker(Protocol):
    """A reranker: one score per document for ``query`` (higher is better)."""

    def score(self, query: str, documents: Sequence[str]) -> list[float]: ...


@dataclass(frozen=True)
class SearchOptions:
    """The validated options of one search object (see :class:`~connector.search.hybrid.HybridSearch`)."""

    embedder: Embedder | None
    vector_field: str | None
    lexical_fields: dict[str, float] | None
    lexical_form: LexicalForm | None
    tie_breaker: float | None
    fusion: FusionConfig | None
    strategy: Strategy
    max_depth: int
    num_candidates: int
    source_excludes: tuple[str, ...] | None
    rerank: RerankConfig | None
    query_cache_size: int
    check_model: bool
    profiles_index: str
    correct: CorrectMode
    correction: CorrectionSettings
    rewriter: QueryRewriter | None
    rewriter_timeout_s: float | None
    image: ImageSignal | None
    embed_budget_s: float | None
    breaker_failures: int
    breaker_open_s: float
    ubi: UbiLogger | None = None

    def timed_rewriter(self) -> TimedRewriter | None:
        if self.rewriter is None:
            return None
        return TimedRewriter(self.rewriter, timeout_s=self.rewriter_timeout_s)


def search_options(
    index: str,
    *,
    embedder: Embedder | None = None,
    vector_field: str | None = None,
    lexical_fields: Mapping[str, float] | None = None,
    lexical_form: LexicalForm | None = None,
    tie_breaker: float | None = None,
    fusion: FusionConfig | None = None,
    strategy: Strategy = "auto",
    max_depth: int = 100,
    num_candidates: int | None = None,
    source_excludes: Sequence[str] | None = None,
    rerank: RerankConfig | None = None,
    reranker: Reranker | None = None,
    rerank_window: int | None = None,
    query_cache_size: int = 1024,
    check_model: bool = True,
    profiles_index: str | None = None,
    correct: CorrectMode | None = None,
    correction: CorrectionSettings | None = None,
    rewriter: QueryRewriter | None = None,
    rewriter_timeout_s: float | None = 0.5,
    image: ImageSignal | None = None,
    embed_budget_s: float | None = DEFAULT_EMBED_BUDGET_S,
    breaker_failures: int = DEFAULT_BREAKER_FAILURES,
    breaker_open_s: float = DEFAULT_BREAKER_OPEN_S,
    ubi: UbiLogger | None = None,
) -> SearchOptions:
    """Validate a search object's options (the arguments of ``HybridSearch``).

    Raises:
        ConfigError: bad options (``field`` names the option).
    """
    if not index or not isinstance(index, str):
        raise ConfigError("index must be a non-empty index or alias name", field="index")
    if not 1 <= max_depth <= 10_000:
        raise ConfigError(f"max_depth must be within 1..10000, got {max_depth}", field="max_depth")
    if strategy not in ("auto", "client", "server"):
        raise ConfigError(f"strategy must be auto, client or server, got {strategy!r}", field="strategy")
    rerank_window = min(50, max_depth) if rerank_window is None else rerank_window
    if not 1 <= rerank_window <= max_depth:
        raise ConfigError(f"rerank_window must be within 1..max_depth ({max_depth})", field="rerank_window")
    if rerank is not None and reranker is not None:
        raise ConfigError("give rerank= (a RerankConfig) or reranker=, not both", field="rerank")
    if reranker is not None:
        rerank = RerankConfig(reranker=reranker, top_k=rerank_window, cache_size=0)
    if rerank is not None and rerank.top_k > max_depth:
        raise ConfigError(f"rerank top_k {rerank.top_k} exceeds max_depth {max_depth}", field="rerank")
    if embed_budget_s is not None and not 0 < embed_budget_s <= 60:
        raise ConfigError(
            f"embed_budget_s must be within (0, 60] seconds or None (no budget), got {embed_budget_s}",
            field="embed_budget_s",
        )
    if breaker_failures < 1 or breaker_open_s <= 0:
        raise ConfigError("breaker_failures must be >= 1 and breaker_open_s > 0", field="breaker_failures")
    try:
        correct_mode: CorrectMode = validate_correct_mode(correct or DEFAULT_CORRECT)
    except SearchRequestError as e:
        raise ConfigError(str(e), field="correct") from e
    return SearchOptions(
        embedder=embedder,
        vector_field=vector_field,
        lexical_fields=dict(lexical_fields) if lexical_fields else None,
        lexical_form=lexical_form,
        tie_breaker=tie_breaker,
        fusion=fusion,
        strategy=strategy,
        max_depth=max_depth,
        num_candidates=num_candidates or max(2 * max_depth, 100),
        source_excludes=tuple(source_excludes) if source_excludes is not None else None,
        rerank=rerank,
        query_cache_size=query_cache_size,
        check_model=check_model,
        profiles_index=profiles_index or profiles_index_name(index),
        correct=correct_mode,
        correction=correction or DEFAULT_CORRECTION,
        rewriter=rewriter,
        rewriter_timeout_s=rewriter_timeout_s,
        image=image,
        embed_budget_s=embed_budget_s,
        breaker_failures=breaker_failures,
        breaker_open_s=breaker_open_s,
        ubi=ubi,
    )
