"""Reach a cluster and know what it can do: the client (ours or the app's official one, sync or async),
capabilities (pure), ``connect()`` / ``aconnect()`` and connection settings."""

from __future__ import annotations

from connector.cluster.aio import AsyncCluster, aconnect, adetect_capabilities
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
from connector.cluster.detect import as_cluster, connect, detect_capabilities
from connector.cluster.official import OfficialCluster, wrap_client
from connector.cluster.settings import ClusterSpec, ConnectionSettings

__all__ = [
    "ApiResult",
    "AsyncCluster",
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
    "OfficialCluster",
    "MIN_ELASTICSEARCH",
    "MIN_OPENSEARCH",
    "OS_HYBRID_QUERY_SINCE",
    "Quantization",
    "Similarity",
    "VectorEngine",
    "aconnect",
    "adetect_capabilities",
    "as_cluster",
    "connect",
    "detect_capabilities",
    "parse_capabilities",
    "wrap_client",
]
