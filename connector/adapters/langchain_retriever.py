"""A LangChain retriever over a hybrid search (``pip install 'eshybrid[langchain]'``).

``EshybridRetriever(search=HybridSearch(...))`` is a ``langchain_core.retrievers.BaseRetriever``: ``invoke`` and
``ainvoke`` return ``Document``s in the search's order, with the hit's score, explain and the rerank/fallback
flags in ``metadata``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from langchain_core.callbacks import AsyncCallbackManagerForRetrieverRun, CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever
from pydantic import ConfigDict, Field

from connector.adapters._hits import AdapterHit, SearchOptions, asearch_hits, search_hits

__all__ = ["EshybridRetriever"]


def _document(hit: AdapterHit) -> Document:
    return Document(id=hit.id, page_content=hit.text, metadata=hit.metadata)


class EshybridRetriever(BaseRetriever):
    """Hybrid (BM25 + kNN, fused, optionally reranked) retrieval from Elasticsearch or OpenSearch.

    Attributes:
        search: a ``HybridSearch`` (sync and async calls; async runs it in a thread) or an ``AsyncHybridSearch``
            (async calls only).
        k: documents per query.
        search_kwargs: further options of ``search()``: ``mode``, ``filters``, ``fusion``, ``user``...
        text_fields: ``_source`` fields joined into ``page_content`` (default: every string field).
        template: a text template instead, e.g. ``"{title}\\n{description}"``.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    search: Any = Field(description="a HybridSearch or AsyncHybridSearch")
    k: int = Field(10, ge=1, le=10_000)
    search_kwargs: dict[str, Any] = Field(default_factory=dict)
    text_fields: list[str] | None = None
    template: str | None = None

    def _options(self) -> SearchOptions:
        return SearchOptions(
            top_k=self.k, search_kwargs=self.search_kwargs, text_fields=self.text_fields, template=self.template
        )

    def _get_relevant_documents(
        self,
        query: str,
        *,
        run_manager: CallbackManagerForRetrieverRun,
        filters: Sequence[Mapping[str, Any]] | None = None,
    ) -> list[Document]:
        hits = search_hits(self.search, query, self._options(), framework="LangChain", filters=filters)
        return [_document(hit) for hit in hits]

    async def _aget_relevant_documents(
        self,
        query: str,
        *,
        run_manager: AsyncCallbackManagerForRetrieverRun,
        filters: Sequence[Mapping[str, Any]] | None = None,
    ) -> list[Document]:
        hits = await asearch_hits(self.search, query, self._options(), filters=filters)
        return [_document(hit) for hit in hits]
