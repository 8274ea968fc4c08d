"""Multi-node local clusters: several JVMs on 127.0.0.1 forming one cluster, and restarting one node of it.

Each node has its own folder ``<cluster folder>/node-<i>`` (config, data, logs, console log), its own HTTP
and transport ports, and its own process group; the cluster's ``state.json`` lists them all
(:class:`~connector.localcluster.state.LocalNode`). Every node is master-eligible and holds data, so with
three nodes one can leave (a restart, a crash) and the cluster keeps a quorum and, thanks to the index
template installed at start (:func:`~connector.localcluster.config.multi_node_template`), every shard.

:func:`stop_node` / :func:`start_node` are what the fault tests use to take a node away and bring it back.
"""

from __future__ import annotations

import json
import logging
import time
import urllib.error
import urllib.request
from dataclasses import replace
from pathlib import Path

from connector.errors import LocalClusterError
from connector.localcluster.config import (
    LOCAL_HOST,
    MULTI_NODE_TEMPLATE,
    LocalClusterSettings,
    multi_node_template,
    render_cluster_node_config,
)
from connector.localcluster.distribution import dist_dir_name
from connector.localcluster.java import JavaHome
from connector.localcluster.launch import _free_port, _launch_node, _port_free
from connector.localcluster.running import _get_json, _group_alive, _settings, _stop_group
from connector.localcluster.state import LocalCluster, LocalNode, clusters_dir, read_state, write_state

__all__ = ["launch_nodes", "node_ports", "start_node", "stop_node", "wait_nodes_joined"]

logger = logging.getLogger(__name__)


def node_ports(port: int, nodes: int) -> tuple[list[int], list[int]]:
    """HTTP and transport ports of ``nodes`` nodes: HTTP ``port``, ``port + 1``... (0: any free ones),
    transport ports always free ones.

    Raises:
        LocalClusterError: a chosen HTTP port is in use.
    """
    http = [_free_port() for _ in range(nodes)] if port == 0 else [port + i for i in range(nodes)]
    busy = [p for p in http if not _port_free(p)]
    if busy:
        raise LocalClusterError(
            f"ports {busy} on {LOCAL_HOST} are in use; a {nodes}-node cluster takes --port and the next "
            f"{nodes - 1} ports: pick another --port (0 = any free ports)",
            port=port,
        )
    transport: list[int] = []
    while len(transport) < nodes:
        candidate = _free_port()
        if candidate not in http and candidate not in transport:
            transport.append(candidate)
    return http, transport


def _node_config(cluster: LocalCluster, index: int) -> dict[str, str | int | bool | list[str]]:
    node_dir = Path(cluster.nodes[index].node_dir)
    return dict(
        render_cluster_node_config(
            cluster.flavor,
            cluster_name=cluster.name,
            node_names=[node.name for node in cluster.nodes],
            index=index,
            ports=[node.port for node in cluster.nodes],
            transport_ports=[node.transport_port for node in cluster.nodes],
            data_dir=node_dir / "data",
            logs_dir=node_dir / "logs",
        )
    )


def launch_nodes(
    s: LocalClusterSettings,
    *,
    template: LocalCluster,
    ports: list[int],
    transport_ports: list[int],
    heap_mb: int,
    java: JavaHome,
    dist: Path,
) -> LocalCluster:
    """Start every node of a multi-node cluster detached; ``template`` holds what they share (its ``nodes``,
    ``pid`` and ``url`` are filled in here). The state file is written once every node has a pid."""
    cluster_dir = Path(template.cluster_dir)
    nodes = tuple(
        LocalNode(
            name=f"{template.name}-{i}",
            port=port,
            transport_port=transport_ports[i],
            pid=0,
            node_dir=str(cluster_dir / f"node-{i}"),
            heap_mb=heap_mb,
        )  # fmt: skip
        for i, port in enumerate(ports)
    )
    cluster = replace(template, nodes=nodes)
    started: list[LocalNode] = []
    for i, node in enumerate(nodes):
        pid = _launch_node(
            s, flavor=cluster.flavor, node_config=_node_config(cluster, i), heap_mb=heap_mb, java=java, dist=dist,
            node_dir=Path(node.node_dir),
        )  # fmt: skip
        started.append(replace(node, pid=pid))
    cluster = replace(cluster, nodes=tuple(started), pid=started[0].pid, port=started[0].port, url=started[0].url)
    write_state(cluster)
    return cluster


def wait_nodes_joined(cluster: LocalCluster, *, deadline: float) -> bool:
    """Wait until the cluster counts all its nodes, then install the multi-node index template.

    Returns:
        True when every node joined before ``deadline`` (a node that died is a failure for the caller).
    """
    while time.monotonic() < deadline:
        for url in cluster.urls:
            health = _get_json(f"{url}/_cluster/health")
            if health is not None and health.get("number_of_nodes") == len(cluster.nodes):
                _put_template(url, len(cluster.nodes))
                return True
        time.sleep(1.0)
    return False


def _put_template(url: str, nodes: int) -> None:
    body = json.dumps(multi_node_template(nodes)).encode("utf-8")
    request = urllib.request.Request(
        f"{url}/_index_template/{MULTI_NODE_TEMPLATE}", data=body, method="PUT",
        headers={"Content-Type": "application/json"},
    )  # fmt: skip
    try:
        urllib.request.urlopen(request, timeout=30).close()  # noqa: S310 - local http only
    except (OSError, urllib.error.URLError) as e:
        raise LocalClusterError(
            f"could not install the index template {MULTI_NODE_TEMPLATE} on {url}: {e}; "
            "indices created without settings get one shard and no replica",
            url=url,
        ) from e


def _read_multi(name: str, s: LocalClusterSettings, node: int) -> LocalCluster:
    cluster = read_state(clusters_dir(s.home) / name)
    if cluster is None or not cluster.nodes:
        raise LocalClusterError(
            f"no multi-node cluster {name!r} is recorded; start one with `eshybrid cluster up --nodes 3 --name {name}`",
            name=name,
        )
    if not 0 <= node < len(cluster.nodes):
        raise LocalClusterError(f"cluster {name!r} has nodes 0..{len(cluster.nodes) - 1}, not {node}", name=name)
    return cluster


def stop_node(name: str, node: int, *, kill: bool = False, settings: LocalClusterSettings | None = None) -> LocalNode:
    """Stop one node of a multi-node cluster (SIGTERM, or SIGKILL at once with ``kill``); the others keep running.

    Returns:
        The node stopped (its folder and data stay: :func:`start_node` brings it back).
    """
    s = _settings(settings)
    target = _read_multi(name, s, node).nodes[node]
    _stop_group(target.pid, target.name, s.cluster_stop_timeout_s, kill=kill)
    return target


def start_node(name: str, node: int, *, settings: LocalClusterSettings | None = None) -> LocalNode:
    """Start a stopped node of a multi-node cluster again (same ports, same data) and wait until it rejoined.

    Raises:
        LocalClusterError: the node still runs, died during startup or did not rejoin in time.
    """
    s = _settings(settings)
    cluster = _read_multi(name, s, node)
    target = cluster.nodes[node]
    if _group_alive(target.pid):
        raise LocalClusterError(f"node {target.name} still runs (pid {target.pid}); stop it first", name=name)
    dist = s.home / "dist" / dist_dir_name(cluster.flavor, cluster.version, cluster.plugins)
    java = JavaHome(path=Path(cluster.java_home), major=cluster.java_major)
    pid = _launch_node(
        s, flavor=cluster.flavor, node_config=_node_config(cluster, node), heap_mb=target.heap_mb,
        java=java, dist=dist, node_dir=Path(target.node_dir),
    )  # fmt: skip
    restarted = replace(target, pid=pid)
    nodes = tuple(restarted if i == node else n for i, n in enumerate(cluster.nodes))
    cluster = replace(cluster, nodes=nodes, pid=nodes[0].pid)
    write_state(cluster)
    deadline = time.monotonic() + s.cluster_startup_timeout_s
    while time.monotonic() < deadline:
        if not _group_alive(pid):
            raise LocalClusterError(f"node {target.name} exited during startup; see {target.node_dir}", name=name)
        health = _get_json(f"{restarted.url}/_cluster/health")
        if health is not None and health.get("number_of_nodes") == len(nodes):
            return restarted
        time.sleep(1.0)
    raise LocalClusterError(f"node {target.name} did not rejoin within {s.cluster_startup_timeout_s:.0f}s", name=name)
