"""A LlamaIndex retriever over a hybrid search (``pip install 'eshybrid[llamaindex]'``).

``EshybridRetriever(search=HybridSearch(...))`` is a ``llama_index.core.retrievers.BaseRetriever``: ``retrieve``
and ``aretrieve`` return ``NodeWithScore``s in the search's order, each a ``TextNode`` whose ``id_`` is the
document id, with the hit's explain and the rerank/fallback flags in ``metadata`` (kept out of the text an LLM or
an embedder reads).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from llama_index.core.retrievers import BaseRetriever
from llama_index.core.schema import NodeWithScore, QueryBundle, TextNode

from connector.adapters._hits import AdapterHit, SearchOptions, asearch_hits, search_hits
from connector.search import AsyncHybridSearch, HybridSearch

__all__ = ["EshybridRetriever"]


def _node(hit: AdapterHit) -> NodeWithScore:
    keys = list(hit.metadata)
    node = TextNode(
        id_=hit.id,
        text=hit.text,
        metadata=hit.metadata,
        # explain and flags are for the application, not for the prompt or the embedding
        excluded_llm_metadata_keys=keys,
        excluded_embed_metadata_keys=keys,
    )
    return NodeWithScore(node=node, score=hit.score)


class EshybridRetriever(BaseRetriever):
    """Hybrid (BM25 + kNN, fused, optionally reranked) retrieval from Elasticsearch or OpenSearch.

    Args:
        search: a ``HybridSearch`` (``retrieve``; ``aretrieve`` runs it in a thread) or an ``AsyncHybridSearch``
            (``aretrieve`` only).
        top_k: nodes per query.
        search_kwargs: further options of ``search()``: ``mode``, ``filters``, ``fusion``, ``user``...
        text_fields: ``_source`` fields joined into the node text (default: every string field).
        template: a text template instead, e.g. ``"{title}\\n{description}"``.
        kwargs: passed to LlamaIndex's ``BaseRetriever`` (``callback_manager``, ``verbose``...).

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
        **kwargs: Any,
    ) -> None:
        self._search = search
        self._options = SearchOptions(
            top_k=top_k, search_kwargs=dict(search_kwargs or {}), text_fields=text_fields, template=template
        )
        super().__init__(**kwargs)

    def _retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        hits = search_hits(self._search, query_bundle.query_str, self._options, framework="LlamaIndex")
        return [_node(hit) for hit in hits]

    async def _aretrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        hits = await asearch_hits(self._search, query_bundle.query_str, self._options)
        return [_node(hit) for hit in hits]
