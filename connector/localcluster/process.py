"""Start local Elasticsearch / OpenSearch servers (no Docker); stop and probe them via :mod:`.running`.

A server comes from Maven Central (``integ-test-zip`` distribution, plus
OpenSearch plugin zips), is unpacked once under ``$ESHYBRID_HOME/dist`` and
runs detached as an unprivileged user, bound to 127.0.0.1, single-node, with a
small heap. Each running cluster has a folder ``$ESHYBRID_HOME/clusters/<name>``
holding its config, data, logs and ``state.json``.

Example::

    from connector.localcluster import start_cluster, stop_cluster

    cluster = start_cluster(flavor="opensearch", port=0, plugins=("knn", "neural"))
    print(cluster.url)
    stop_cluster(cluster.name, remove_data=True)
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from connector.errors import LocalClusterError
from connector.localcluster.config import (
    DEFAULT_FLAVOR_VERSIONS,
    DEFAULT_OPENSEARCH_PLUGINS,
    LOCAL_HOST,
    MULTI_NODE_HEAP_MB,
    LocalClusterSettings,
    render_node_config,
)
from connector.localcluster.distribution import Flavor, dist_dir_name, ensure_distribution, ordered_plugins
from connector.localcluster.java import JavaHome, choose_java, default_java_search_dirs, find_java_homes
from connector.localcluster.launch import _free_port, _launch_node, _log_tail, _port_free
from connector.localcluster.multinode import launch_nodes, node_ports, start_node, stop_node, wait_nodes_joined
from connector.localcluster.running import (
    _cluster_alive,
    _get_json,
    _group_alive,
    _settings,
    _stop,
    cluster_status,
    server_version,
    stop_all_clusters,
    stop_cluster,
    stop_clusters,
)
from connector.localcluster.state import (
    LocalCluster,
    clusters_dir,
    name_lock_file,
    read_state,
    remove_state,
    write_state,
)

__all__ = [
    "cluster_status",
    "fetch_distribution",
    "select_java",
    "server_version",
    "start_cluster",
    "start_node",
    "stop_node",
    "stop_all_clusters",
    "stop_cluster",
    "stop_clusters",
]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class _NodeSpec:
    """The node :func:`start_cluster` was asked for, defaults resolved (``port`` 0: any free port)."""

    flavor: Flavor
    version: str
    name: str
    port: int
    plugins: tuple[str, ...]
    heap_mb: int
    nodes: int = 1


# --------------------------------------------------------------------------- helpers


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _prepare_home(settings: LocalClusterSettings) -> None:
    for sub in (settings.home, settings.home / "clusters"):
        sub.mkdir(parents=True, exist_ok=True)
        # The server user must traverse the home to reach its cluster folder.
        with contextlib.suppress(PermissionError):
            os.chmod(sub, 0o755)


# --------------------------------------------------------------------------- public API


def select_java(flavor: Flavor, version: str, *, settings: LocalClusterSettings | None = None) -> JavaHome:
    """The JDK a server version will run with (``ESHYBRID_JAVA_HOME`` wins).

    Raises:
        LocalClusterError: no installed JDK fits the version.
    """
    s = _settings(settings)
    homes = find_java_homes(default_java_search_dirs(s.jvm_dir))
    return choose_java(flavor, version, homes=homes, override=s.java_home)


def fetch_distribution(
    *,
    flavor: Flavor,
    version: str | None = None,
    plugins: Sequence[str] = (),
    settings: LocalClusterSettings | None = None,
) -> Path:
    """Download (with ``mvn``) and unpack a server, plugins installed; cached.

    Args:
        flavor: ``elasticsearch`` or ``opensearch``.
        version: server version; the flavor's default when None.
        plugins: OpenSearch plugins (``knn``, ``neural``, ``ml``, ``job-scheduler``).
        settings: defaults to :class:`LocalClusterSettings` from env.

    Returns:
        The folder of the unpacked distribution.

    Raises:
        LocalClusterError: ``mvn`` or a JDK is missing, or the download failed.
    """
    s = _settings(settings)
    version = version or DEFAULT_FLAVOR_VERSIONS[flavor]
    ordered = ordered_plugins(plugins)
    java = select_java(flavor, version, settings=s)
    _prepare_home(s)
    lock = s.home / "dist" / f".{dist_dir_name(flavor, version, ordered)}.lock"
    with _file_lock(lock):
        return ensure_distribution(flavor, version, plugins=ordered, java=java, home=s.home, mvn=s.mvn)


def start_cluster(
    *,
    flavor: Flavor,
    version: str | None = None,
    port: int = 9200,
    name: str | None = None,
    plugins: Sequence[str] | None = None,
    heap_mb: int | None = None,
    nodes: int = 1,
    settings: LocalClusterSettings | None = None,
) -> LocalCluster:
    """Start a detached cluster (one node, or ``nodes`` JVMs forming one) and wait until it is yellow or green.

    Starting a name that already runs (same flavor and version) returns it.

    Args:
        flavor: ``elasticsearch`` or ``opensearch``.
        version: server version; the flavor's default (9.5.4 / 3.6.0) when None.
        port: HTTP port on 127.0.0.1; 0 picks a free one.
        name: cluster name (folder under ``$ESHYBRID_HOME/clusters``); ``<flavor>-<version>`` when None.
        plugins: OpenSearch plugins; ``("knn",)`` when None. Elasticsearch takes none.
        heap_mb: JVM heap per node; ``ESHYBRID_CLUSTER_HEAP_MB`` (512) when None, and at most 384 per node
            of a multi-node cluster.
        nodes: 1 (``discovery.type: single-node``) or more: that many master-eligible data nodes on HTTP ports
            ``port``, ``port + 1``... (0: free ones), found through their transport ports; every index created
            without settings gets a shard per node and one replica (:mod:`~connector.localcluster.multinode`).
        settings: defaults to :class:`LocalClusterSettings` from env.

    Returns:
        The running cluster (its ``url`` is ``http://127.0.0.1:<port>``).

    Raises:
        LocalClusterError: port in use, no suitable JDK, ``mvn`` missing, download
            failed, the server died or did not get healthy in time (log tail attached).
    """
    s = _settings(settings)
    if not 1 <= nodes <= 9:
        raise LocalClusterError(f"nodes must be within 1..9, got {nodes}", nodes=nodes)
    if flavor not in DEFAULT_FLAVOR_VERSIONS:
        raise LocalClusterError(f"unknown flavor {flavor!r}; use elasticsearch or opensearch", flavor=flavor)
    version = version or DEFAULT_FLAVOR_VERSIONS[flavor]
    name = name or f"{flavor}-{version}"
    if plugins is None:
        plugins = DEFAULT_OPENSEARCH_PLUGINS if flavor == "opensearch" else ()
    spec = _NodeSpec(
        flavor=flavor,
        version=version,
        name=name,
        port=port,
        plugins=ordered_plugins(plugins),
        heap_mb=_heap_mb(heap_mb, s, nodes),
        nodes=nodes,
    )
    _prepare_home(s)
    cluster_dir = clusters_dir(s.home) / name
    lock_file = name_lock_file(s.home, name)
    try:
        cluster = _start_locked(s, spec, cluster_dir=cluster_dir, name_lock=lock_file)
    except LocalClusterError:
        if not cluster_dir.exists():  # refused before anything was made: leave no lock file behind
            with contextlib.suppress(FileNotFoundError):
                lock_file.unlink()
        raise
    return cluster


def _start_locked(s: LocalClusterSettings, spec: _NodeSpec, *, cluster_dir: Path, name_lock: Path) -> LocalCluster:
    """Under the name's lock: reuse a running cluster or check the port, fetch, launch; then wait."""
    name = spec.name
    with _file_lock(name_lock):
        existing = read_state(cluster_dir)
        if existing is not None and _cluster_alive(existing):
            same = (existing.flavor, existing.version, len(existing.nodes) or 1) == (
                spec.flavor,
                spec.version,
                spec.nodes,
            )
            if same and spec.port in (0, existing.port):
                logger.info("cluster %s already runs at %s", name, existing.url)
                return existing
            raise LocalClusterError(
                f"cluster {name!r} already runs ({existing.flavor} {existing.version} at {existing.url}); "
                f"stop it first with `eshybrid cluster down --name {name}` or pick another --name",
                name=name,
                url=existing.url,
            )
        if spec.nodes > 1:
            return _start_multi(s, spec, cluster_dir=cluster_dir)
        port = _free_port() if spec.port == 0 else spec.port
        if not _port_free(port):
            raise LocalClusterError(
                f"port {port} on {LOCAL_HOST} is already in use; pick another with --port "
                "(0 = any free port) or stop what listens there (`eshybrid cluster status`)",
                port=port,
                name=name,
            )
        java = select_java(spec.flavor, spec.version, settings=s)
        dist = fetch_distribution(flavor=spec.flavor, version=spec.version, plugins=spec.plugins, settings=s)
        cluster = _launch(s, replace(spec, port=port), java=java, dist=dist, cluster_dir=cluster_dir)
    _wait_healthy(cluster, s)
    return cluster


def _heap_mb(heap_mb: int | None, s: LocalClusterSettings, nodes: int) -> int:
    if heap_mb is not None:
        return heap_mb
    return s.cluster_heap_mb if nodes == 1 else min(s.cluster_heap_mb, MULTI_NODE_HEAP_MB)


def _start_multi(s: LocalClusterSettings, spec: _NodeSpec, *, cluster_dir: Path) -> LocalCluster:
    """Launch the nodes of a multi-node cluster (the name's lock held), wait for all of them to join."""
    ports, transport_ports = node_ports(spec.port, spec.nodes)
    java = select_java(spec.flavor, spec.version, settings=s)
    dist = fetch_distribution(flavor=spec.flavor, version=spec.version, plugins=spec.plugins, settings=s)
    template = LocalCluster(
        name=spec.name, flavor=spec.flavor, version=spec.version, url="", port=0, pid=0, plugins=spec.plugins,
        java_home=str(java.path), java_major=java.major, cluster_dir=str(cluster_dir), started_at=time.time(),
    )  # fmt: skip
    cluster = launch_nodes(
        s, template=template, ports=ports, transport_ports=transport_ports, heap_mb=spec.heap_mb, java=java,
        dist=dist,
    )  # fmt: skip
    _wait_healthy(cluster, s)
    if not wait_nodes_joined(cluster, deadline=time.monotonic() + s.cluster_startup_timeout_s):
        raise _startup_failed(
            cluster, f"{cluster.name}: not all {spec.nodes} nodes joined", stop_timeout_s=s.cluster_stop_timeout_s
        )
    return cluster


def _launch(s: LocalClusterSettings, spec: _NodeSpec, *, java: JavaHome, dist: Path, cluster_dir: Path) -> LocalCluster:
    """Write the node's config and start the server detached (new session)."""
    node_config = render_node_config(
        spec.flavor, name=spec.name, port=spec.port, data_dir=cluster_dir / "data", logs_dir=cluster_dir / "logs"
    )
    pid = _launch_node(
        s, flavor=spec.flavor, node_config=node_config, heap_mb=spec.heap_mb, java=java, dist=dist,
        node_dir=cluster_dir,
    )  # fmt: skip
    cluster = LocalCluster(
        name=spec.name, flavor=spec.flavor, version=spec.version, url=f"http://{LOCAL_HOST}:{spec.port}",
        port=spec.port, pid=pid, plugins=spec.plugins, java_home=str(java.path), java_major=java.major,
        cluster_dir=str(cluster_dir), started_at=time.time(),
    )  # fmt: skip
    write_state(cluster)
    return cluster


def _wait_healthy(cluster: LocalCluster, s: LocalClusterSettings) -> None:
    deadline = time.monotonic() + s.cluster_startup_timeout_s
    settled_red = 0
    while time.monotonic() < deadline:
        if not all(_group_alive(pid) for pid in cluster.pids):
            raise _startup_failed(
                cluster,
                f"{cluster.flavor} {cluster.version} ({cluster.name}) exited during startup",
                stop_timeout_s=s.cluster_stop_timeout_s if cluster.nodes else None,
            )
        health = _get_json(cluster.health_url)
        if health is not None and health.get("status") in ("yellow", "green"):
            logger.info("%s is %s at %s", cluster.name, health["status"], cluster.url)
            _wait_license(cluster, deadline)
            return
        # A restarted cluster may keep an index that can never recover (e.g. a faiss
        # field on the k-NN stand-ins): once recovery has settled, red is an answer too.
        settled_red = settled_red + 1 if health is not None and _red_settled(health) else 0
        if settled_red >= 5:
            logger.warning("%s is up at %s but red: some index cannot recover (see _cat/indices?health=red)",
                           cluster.name, cluster.url)  # fmt: skip
            return
        time.sleep(1.0)
    raise _startup_failed(
        cluster,
        f"{cluster.name} did not get healthy within {s.cluster_startup_timeout_s:.0f}s "
        "(raise ESHYBRID_CLUSTER_STARTUP_TIMEOUT_S on a slow machine)",
        stop_timeout_s=s.cluster_stop_timeout_s,
    )


def _wait_license(cluster: LocalCluster, deadline: float) -> None:
    """Elasticsearch writes its self-generated basic license a moment after the cluster turns yellow; until then
    ``GET /_license`` answers 404 and a client connecting then would see no license.  Wait for it (bounded)."""
    if cluster.flavor != "elasticsearch":
        return
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{cluster.url}/_license", timeout=2.0):  # noqa: S310 - local http only
                return
        except urllib.error.HTTPError as err:
            if err.code != 404:  # 400/405: no x-pack in this distribution; nothing to wait for
                return
        except OSError:
            pass
        time.sleep(0.25)
    logger.warning("%s is up at %s but has no license yet", cluster.name, cluster.url)


def _startup_failed(cluster: LocalCluster, problem: str, *, stop_timeout_s: float | None = None) -> LocalClusterError:
    """The error of a start that failed, with the log tail; the server (if ``stop_timeout_s``) and state go."""
    cluster_dir = Path(cluster.cluster_dir)
    tail = _log_tail(cluster_dir)
    if stop_timeout_s is not None:
        _stop(cluster, stop_timeout_s)
    remove_state(cluster_dir)
    return LocalClusterError(f"{problem}; log tail:\n{tail}", name=cluster.name, log_tail=tail)


def _red_settled(health: Mapping[str, object]) -> bool:
    return (
        health.get("status") == "red"
        and health.get("initializing_shards") == 0
        and health.get("delayed_unassigned_shards") == 0
        and health.get("number_of_pending_tasks") == 0
    )
