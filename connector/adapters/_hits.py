"""What every adapter does with a finished search: the hits as (id, text, score, metadata).

Framework-free and pure, so the three adapters (LangChain, Haystack, LlamaIndex) differ only in the document
class they build and how they call the facade. They use the public facade API only:
``search(text, **options) -> SearchResponse``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from connector.errors import ConfigError
from connector.search import AsyncHybridSearch, HybridSearch
from connector.search.rerank import document_text

if TYPE_CHECKING:
    from connector.search.models import SearchHit, SearchResponse

__all__ = ["AdapterHit", "SearchOptions", "adapter_hits", "asearch_hits", "search_hits"]

# Options an adapter passes on to ``search()``; what the framework owns (the text, the page size) is not here.
_FORBIDDEN_OPTIONS = frozenset({"text", "size", "page"})


@dataclass(frozen=True)
class SearchOptions:
    """How an adapter searches and renders hits (the same for every framework).

    Attributes:
        top_k: hits per retrieval (``size`` of the search).
        search_kwargs: further keyword options of ``HybridSearch.search`` (``mode``, ``filters``, ``fusion``,
            ``strategy``, ``user``, ``correct``...); ``explain`` defaults to ``True`` so metadata carries it.
        text_fields: ``_source`` fields joined into the document text (default: every string field).
        template: a text template instead (``"{title}\\n{description}"``), as the reranker and the jobs read it.
    """

    top_k: int = 10
    search_kwargs: Mapping[str, Any] = field(default_factory=dict)
    text_fields: Sequence[str] | None = None
    template: str | None = None

    def __post_init__(self) -> None:
        if not 1 <= self.top_k <= 10_000:
            raise ConfigError(f"top_k must be within 1..10000, got {self.top_k}")
        clash = sorted(_FORBIDDEN_OPTIONS & set(self.search_kwargs))
        if clash:
            raise ConfigError(f"search_kwargs may not set {clash}: pass top_k, and the query to the retriever")

    def call_options(
        self, top_k: int | None = None, filters: Sequence[Mapping[str, Any]] | None = None
    ) -> dict[str, Any]:
        """The keyword options of one ``search()`` call."""
        options: dict[str, Any] = {"explain": True, **self.search_kwargs, "size": top_k or self.top_k}
        if filters:
            options["filters"] = [*options.get("filters", ()), *filters]
        return options


@dataclass(frozen=True)
class AdapterHit:
    """One hit as the frameworks want it: an id, a text, a score and flat metadata."""

    id: str
    text: str
    score: float
    metadata: dict[str, Any]


def _metadata(hit: SearchHit, response: SearchResponse) -> dict[str, Any]:
    metadata: dict[str, Any] = {
        "id": hit.id,
        "index": hit.index,
        "rank": hit.rank,
        "score": hit.score,
        "mode": response.mode,
        "strategy": response.strategy,
        "reranked": response.reranked,
        "rerank_fallback": response.rerank_fallback,
        # The re-cut of the search path adds these; read them when the response has them.
        "vector_fallback": bool(getattr(response, "vector_fallback", False)),
        "query_id": getattr(response, "query_id", None),
        "corrected_query": response.corrected_query,
        "source": dict(hit.source) if hit.source else {},
    }
    if response.rerank_fallback_reason:
        metadata["rerank_fallback_reason"] = response.rerank_fallback_reason
    if hit.explanation is not None:
        metadata["explanation"] = hit.explanation.model_dump(mode="json")
    return metadata


def adapter_hits(response: SearchResponse, options: SearchOptions) -> list[AdapterHit]:
    """The hits of ``response``, in order, with their text rendered as ``options`` say."""
    return [
        AdapterHit(
            id=hit.id,
            text=document_text(hit.source, fields=options.text_fields, template=options.template),
            score=hit.score,
            metadata=_metadata(hit, response),
        )
        for hit in response.hits
    ]


def search_hits(
    search: HybridSearch | AsyncHybridSearch,
    query: str,
    options: SearchOptions,
    *,
    framework: str,
    top_k: int | None = None,
    filters: Sequence[Mapping[str, Any]] | None = None,
) -> list[AdapterHit]:
    """Search with the sync facade and return the hits.

    Raises:
        ConfigError: ``search`` is an :class:`AsyncHybridSearch` (the sync path cannot await it).
        EshybridError: what ``HybridSearch.search`` raises.
    """
    if not isinstance(search, HybridSearch):
        raise ConfigError(
            f"this {framework} adapter holds an AsyncHybridSearch: call its async method, or give it a HybridSearch"
        )
    response = search.search(query, **options.call_options(top_k, filters))
    return adapter_hits(response, options)


async def asearch_hits(
    search: HybridSearch | AsyncHybridSearch,
    query: str,
    options: SearchOptions,
    *,
    top_k: int | None = None,
    filters: Sequence[Mapping[str, Any]] | None = None,
) -> list[AdapterHit]:
    """Search with the async facade (a sync one runs in a worker thread) and return the hits."""
    call = options.call_options(top_k, filters)
    if isinstance(search, AsyncHybridSearch):
        response = await search.search(query, **call)
    else:
        response = await asyncio.to_thread(search.search, query, **call)
    return adapter_hits(response, options)
