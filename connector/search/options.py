"""The options of a search object (what ``HybridSearch(...)`` takes besides the cluster and index), validated once.

Declared once (:class:`SearchOptions`): both facades take its fields as keyword arguments (their signature is
built from them) or one ``options=SearchOptions(...)``; the core reads only this.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
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

__all__ = ["DEFAULT_EMBED_BUDGET_S", "Reranker", "SearchOptions", "options_signature"]


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


@dataclass(frozen=True, kw_only=True)
class SearchOptions:
    """The options of a search object: what ``HybridSearch(...)`` takes besides the cluster and the index.

    Declared once, here: both facades take these keyword arguments (or one ``options=SearchOptions(...)``) and
    their signature is built from these fields. Validated when built (``ConfigError`` names the option); the
    meaning of each is on :class:`~connector.search.hybrid.HybridSearch`. ``reranker``/``rerank_window`` are
    a shortcut that builds ``rerank``.
    """

    embedder: Embedder | None = None
    vector_field: str | None = None
    lexical_fields: Mapping[str, float] | None = None
    lexical_form: LexicalForm | None = None
    tie_breaker: float | None = None
    fusion: FusionConfig | None = None
    strategy: Strategy = "auto"
    max_depth: int = 100
    num_candidates: int | None = None
    source_excludes: Sequence[str] | None = None
    rerank: RerankConfig | None = None
    reranker: Reranker | None = None
    rerank_window: int | None = None
    query_cache_size: int = 1024
    check_model: bool = True
    profiles_index: str | None = None
    correct: CorrectMode | None = None
    correction: CorrectionSettings | None = None
    rewriter: QueryRewriter | None = None
    rewriter_timeout_s: float | None = 0.5
    image: ImageSignal | None = None
    embed_budget_s: float | None = DEFAULT_EMBED_BUDGET_S
    breaker_failures: int = DEFAULT_BREAKER_FAILURES
    breaker_open_s: float = DEFAULT_BREAKER_OPEN_S
    ubi: UbiLogger | None = None

    def __post_init__(self) -> None:
        """Validate; keep copies of the mutable arguments; build ``rerank`` from the ``reranker`` shortcut."""
        max_depth = self.max_depth
        if not 1 <= max_depth <= 10_000:
            raise ConfigError(f"max_depth must be within 1..10000, got {max_depth}", field="max_depth")
        if self.strategy not in ("auto", "client", "server"):
            raise ConfigError(f"strategy must be auto, client or server, got {self.strategy!r}", field="strategy")
        rerank_window = min(50, max_depth) if self.rerank_window is None else self.rerank_window
        if not 1 <= rerank_window <= max_depth:
            raise ConfigError(f"rerank_window must be within 1..max_depth ({max_depth})", field="rerank_window")
        rerank = self.rerank
        if rerank is not None and self.reranker is not None:
            raise ConfigError("give rerank= (a RerankConfig) or reranker=, not both", field="rerank")
        if self.reranker is not None:
            rerank = RerankConfig(reranker=self.reranker, top_k=rerank_window, cache_size=0)
        if rerank is not None and rerank.top_k > max_depth:
            raise ConfigError(f"rerank top_k {rerank.top_k} exceeds max_depth {max_depth}", field="rerank")
        budget = self.embed_budget_s
        if budget is not None and not 0 < budget <= 60:
            raise ConfigError(
                f"embed_budget_s must be within (0, 60] seconds or None (no budget), got {budget}",
                field="embed_budget_s",
            )
        if self.breaker_failures < 1 or self.breaker_open_s <= 0:
            raise ConfigError("breaker_failures must be >= 1 and breaker_open_s > 0", field="breaker_failures")
        try:
            correct: CorrectMode = validate_correct_mode(self.correct or DEFAULT_CORRECT)
        except SearchRequestError as e:
            raise ConfigError(str(e), field="correct") from e
        lexical = dict(self.lexical_fields) if self.lexical_fields else None
        excludes = tuple(self.source_excludes) if self.source_excludes is not None else None
        normalized = {"rerank": rerank, "correct": correct, "lexical_fields": lexical, "source_excludes": excludes}
        for name, value in normalized.items():
            object.__setattr__(self, name, value)  # frozen: set once, while being built

    @property
    def hnsw_candidates(self) -> int:
        """ES's HNSW candidate list: ``num_candidates``, else ``max(2 * max_depth, 100)``."""
        return self.num_candidates or max(2 * self.max_depth, 100)

    @property
    def correct_mode(self) -> CorrectMode:
        """The spelling correction of a search that names none (validated)."""
        return self.correct or DEFAULT_CORRECT

    @property
    def correction_settings(self) -> CorrectionSettings:
        """The correction's thresholds (``correction``, else the defaults)."""
        return self.correction or DEFAULT_CORRECTION

    def profiles_index_of(self, index: str) -> str:
        """Where ``search(user="id")`` reads profiles for ``index``."""
        return self.profiles_index or profiles_index_name(index)

    def timed_rewriter(self) -> TimedRewriter | None:
        if self.rewriter is None:
            return None
        return TimedRewriter(self.rewriter, timeout_s=self.rewriter_timeout_s)


def options_signature(init: inspect.Signature) -> inspect.Signature:
    """``init`` (``self, cluster, index, *, options, **kwargs``) with ``**kwargs`` spelled out: every option."""
    head = [p for p in init.parameters.values() if p.kind is not inspect.Parameter.VAR_KEYWORD]
    options = [
        inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, default=f.default, annotation=f.type)
        for f in fields(SearchOptions)
    ]
    return init.replace(parameters=[*head, *options])
