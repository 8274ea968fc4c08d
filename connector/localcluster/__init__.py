"""Development clusters without Docker: Elasticsearch and OpenSearch from Maven Central, run as a plain process.

- :mod:`~connector.localcluster.config`: settings and the node's config files (pure);
- :mod:`~connector.localcluster.state`: each cluster's ``state.json`` and which clusters ``down`` stops;
- :mod:`~connector.localcluster.java`: which JDK runs a server version;
- :mod:`~connector.localcluster.distribution`: Maven fetch, unpack, OpenSearch modules and plugins;
- :mod:`~connector.localcluster.knnstub`: stand-ins for the k-NN plugin's native libraries;
- :mod:`~connector.localcluster.launch`: launch one server process from its rendered config;
- :mod:`~connector.localcluster.process`: start clusters (one node, or several via
  :mod:`~connector.localcluster.multinode`, which also stops and starts single nodes);
- :mod:`~connector.localcluster.running`: probe, report and stop the running servers.
"""

from __future__ import annotations

from connector.localcluster.config import (
    DEFAULT_FLAVOR_VERSIONS,
    DEFAULT_OPENSEARCH_PLUGINS,
    LocalClusterSettings,
    render_jvm_options,
    render_node_config,
)
from connector.localcluster.distribution import Flavor
from connector.localcluster.process import fetch_distribution, select_java, start_cluster, start_node, stop_node
from connector.localcluster.running import (
    cluster_status,
    server_version,
    stop_all_clusters,
    stop_cluster,
    stop_clusters,
)
from connector.localcluster.state import ClusterStatus, LocalCluster, LocalNode, clusters_to_stop

__all__ = [
    "ClusterStatus",
    "DEFAULT_FLAVOR_VERSIONS",
    "DEFAULT_OPENSEARCH_PLUGINS",
    "Flavor",
    "LocalCluster",
    "LocalClusterSettings",
    "LocalNode",
    "cluster_status",
    "clusters_to_stop",
    "fetch_distribution",
    "render_jvm_options",
    "render_node_config",
    "select_java",
    "server_version",
    "start_cluster",
    "start_node",
    "stop_all_clusters",
    "stop_cluster",
    "stop_clusters",
    "stop_node",
]
