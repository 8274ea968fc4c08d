"""A Haystack 2 retriever component over a hybrid search (``pip install 'eshybrid[haystack]'``).

``EshybridRetriever(search=HybridSearch(...))`` is a Haystack ``@component`` with ``run`` and ``run_async``
(``query``, ``filters``, ``top_k``) returning ``{"documents": [Document, ...]}`` in the search's order, with the
hit's score, explain and the rerank/fallback flags in ``meta``. ``filters`` are query-DSL clauses applied to every
leg (eshybrid's own filters), not Haystack's filter syntax.

The component holds a live search object, so it is built in code, not from a pipeline's YAML.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from haystack import Document, component

from connector.adapters._hits import AdapterHit, SearchOptions, asearch_hits, search_hits
from connector.search import AsyncHybridSearch, HybridSearch

__all__ = ["EshybridRetriever"]


def _document(hit: AdapterHit) -> Document:
    return Document(id=hit.id, content=hit.text, score=hit.score, meta=hit.metadata)


@component
class EshybridRetriever:
    """Hybrid (BM25 + kNN, fused, optionally reranked) retrieval from Elasticsearch or OpenSearch.

    Args:
        search: a ``HybridSearch`` (``run``; ``run_async`` runs it in a thread) or an ``AsyncHybridSearch``
            (``run_async`` only).
        top_k: documents per query (``run(top_k=...)`` overrides it).
        search_kwargs: further options of ``search()``: ``mode``, ``filters``, ``fusion``, ``user``...
        text_fields: ``_source`` fields joined into ``content`` (default: every string field).
        template: a text template instead, e.g. ``"{title}\\n{description}"``.

    Raises:
        ConfigError: ``top_k`` out of range, or ``search_kwargs`` naming ``size``/``page``/``text``.
    """

    def __init__(
        self,
        search: HybridSearch | AsyncHybridSearch,
        *,
        top_k: int = 10,
        search_kwargs: Mapping[str, Any] | None = None,
        text_fields: Sequence[str] | None = None,
        template: str | None = None,
    ) -> None:
        self.search = search
        self.options = SearchOptions(
            top_k=top_k, search_kwargs=dict(search_kwargs or {}), text_fields=text_fields, template=template
        )

    @component.output_types(documents=list[Document])
    def run(
        self, query: str, filters: list[dict[str, Any]] | None = None, top_k: int | None = None
    ) -> dict[str, list[Document]]:
        """Search ``query``; ``filters`` (query-DSL clauses) are added to the configured ones."""
        hits = search_hits(self.search, query, self.options, framework="Haystack", top_k=top_k, filters=filters)
        return {"documents": [_document(hit) for hit in hits]}

    @component.output_types(documents=list[Document])
    async def run_async(
        self, query: str, filters: list[dict[str, Any]] | None = None, top_k: int | None = None
    ) -> dict[str, list[Document]]:
        """:meth:`run`, awaited."""
        hits = await asearch_hits(self.search, query, self.options, top_k=top_k, filters=filters)
        return {"documents": [_document(hit) for hit in hits]}
