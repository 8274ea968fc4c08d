"""eshybrid's connector: talking to Elasticsearch 8/9 and OpenSearch 2/3.

Public names are loaded lazily (PEP 562 ``__getattr__``), so ``import connector``
stays cheap and never imports torch, ray or transformers.  To export a new
name: add it to ``_EXPORTS`` (name -> defining module), to ``__all__``, and to
the ``TYPE_CHECKING`` block (``import X as X``, for type checkers).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from connector.cluster.aio import AsyncCluster as AsyncCluster
    from connector.cluster.aio import aconnect as aconnect
    from connector.cluster.capabilities import Capabilities as Capabilities
    from connector.cluster.capabilities import parse_capabilities as parse_capabilities
    from connector.cluster.client import ApiResult as ApiResult
    from connector.cluster.client import Cluster as Cluster
    from connector.cluster.detect import as_cluster as as_cluster
    from connector.cluster.detect import connect as connect
    from connector.cluster.detect import detect_capabilities as detect_capabilities
    from connector.search import AsyncHybridSearch as AsyncHybridSearch
    from connector.search import FusionConfig as FusionConfig
    from connector.search import HybridSearch as HybridSearch
    from connector.search import SearchResponse as SearchResponse
    from connector.search.rerank import RerankConfig as RerankConfig
    from connector.services.embedding import AsyncEmbeddingClient as AsyncEmbeddingClient
    from connector.services.embedding import EmbeddingClient as EmbeddingClient
    from connector.services.rerank import AsyncRerankClient as AsyncRerankClient
    from connector.services.rerank import RerankClient as RerankClient

# name -> module that defines it
_EXPORTS: dict[str, str] = {
    "connect": "connector.cluster.detect",
    "aconnect": "connector.cluster.aio",
    "as_cluster": "connector.cluster.detect",
    "AsyncCluster": "connector.cluster.aio",
    "Cluster": "connector.cluster.client",
    "ApiResult": "connector.cluster.client",
    "Capabilities": "connector.cluster.capabilities",
    "detect_capabilities": "connector.cluster.detect",
    "parse_capabilities": "connector.cluster.capabilities",
    "EmbeddingClient": "connector.services.embedding",
    "AsyncEmbeddingClient": "connector.services.embedding",
    "AsyncRerankClient": "connector.services.rerank",
    "RerankConfig": "connector.search.rerank",
    "RerankClient": "connector.services.rerank",
    "HybridSearch": "connector.search",
    "AsyncHybridSearch": "connector.search",
    "FusionConfig": "connector.search",
    "SearchResponse": "connector.search",
}

__all__ = [
    "ApiResult",
    "AsyncEmbeddingClient",
    "AsyncHybridSearch",
    "AsyncRerankClient",
    "EmbeddingClient",
    "FusionConfig",
    "HybridSearch",
    "RerankConfig",
    "RerankClient",
    "SearchResponse",
    "Capabilities",
    "Cluster",
    "AsyncCluster",
    "aconnect",
    "as_cluster",
    "connect",
    "detect_capabilities",
    "parse_capabilities",
]


def __getattr__(name: str) -> Any:
    module_name = _EXPORTS.get(name)
    if module_name is None:
        raise AttributeError(f"module 'connector' has no attribute {name!r}")
    value = getattr(importlib.import_module(module_name), name)
    globals()[name] = value  # cache: the next lookup skips __getattr__
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
