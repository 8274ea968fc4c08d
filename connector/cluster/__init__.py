"""Reach a cluster and know what it can do: the client, capabilities (pure), ``connect()`` and connection settings."""

from __future__ import annotations

from connector.cluster.capabilities import (
    HYBRID_FORMS,
    MIN_ELASTICSEARCH,
    MIN_OPENSEARCH,
    OS_HYBRID_QUERY_SINCE,
    Capabilities,
    Flavor,
    HybridForm,
    KnnLegShape,
    KnnShape,
    Quantization,
    Similarity,
    VectorEngine,
    parse_capabilities,
)
from connector.cluster.client import ApiResult, Cluster, JsonDict
from connector.cluster.detect import connect, detect_capabilities
from connector.cluster.settings import ClusterSpec, ConnectionSettings

__all__ = [
    "ApiResult",
    "Capabilities",
    "Cluster",
    "ClusterSpec",
    "ConnectionSettings",
    "Flavor",
    "HYBRID_FORMS",
    "HybridForm",
    "JsonDict",
    "KnnLegShape",
    "KnnShape",
    "MIN_ELASTICSEARCH",
    "MIN_OPENSEARCH",
    "OS_HYBRID_QUERY_SINCE",
    "Quantization",
    "Similarity",
    "VectorEngine",
    "connect",
    "detect_capabilities",
    "parse_capabilities",
]
