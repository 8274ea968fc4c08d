"""Development clusters without Docker: Elasticsearch and OpenSearch from Maven Central, run as a plain process."""

from __future__ import annotations

from connector.localcluster.process import (
    DEFAULT_FLAVOR_VERSIONS,
    DEFAULT_OPENSEARCH_PLUGINS,
    DEFAULT_VERSIONS,
    ClusterStatus,
    Flavor,
    LocalCluster,
    LocalClusterSettings,
    cluster_status,
    fetch_distribution,
    render_jvm_options,
    render_node_config,
    select_java,
    server_version,
    start_cluster,
    stop_all_clusters,
    stop_cluster,
)

__all__ = [
    "ClusterStatus",
    "DEFAULT_FLAVOR_VERSIONS",
    "DEFAULT_OPENSEARCH_PLUGINS",
    "DEFAULT_VERSIONS",
    "Flavor",
    "LocalCluster",
    "LocalClusterSettings",
    "cluster_status",
    "fetch_distribution",
    "render_jvm_options",
    "render_node_config",
    "select_java",
    "server_version",
    "start_cluster",
    "stop_all_clusters",
    "stop_cluster",
]
