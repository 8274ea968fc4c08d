"""Framework adapters: eshybrid's hybrid search as a LangChain, Haystack 2 or LlamaIndex retriever.

Each lives in its own module and needs its own extra; importing this package imports no framework::

    from connector.adapters.langchain_retriever import EshybridRetriever      # pip install 'eshybrid[langchain]'
    from connector.adapters.haystack_component import EshybridRetriever       # pip install 'eshybrid[haystack]'
    from connector.adapters.llamaindex_retriever import EshybridRetriever     # pip install 'eshybrid[llamaindex]'

All three search through the facade's public API (``HybridSearch.search`` / ``AsyncHybridSearch.search``) and put
the hit's score, explain and the rerank/fallback flags into the document's metadata.
"""

from __future__ import annotations

from connector.adapters._hits import AdapterHit, SearchOptions, adapter_hits

__all__ = ["AdapterHit", "SearchOptions", "adapter_hits"]
