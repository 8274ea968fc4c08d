"""The running local servers: probe them, report their status, stop them (whole process groups).

Internal to :mod:`connector.localcluster`; :mod:`~connector.localcluster.process` starts the
servers and re-exports the public names below.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import signal
import time
import urllib.error
import urllib.request

from connector.errors import LocalClusterError
from connector.localcluster.config import LocalClusterSettings
from connector.localcluster.state import (
    ClusterStatus,
    LocalCluster,
    LocalNode,
    clusters_dir,
    clusters_to_stop,
    name_lock_file,
    read_state,
    remove_state,
    state_dirs,
)

__all__ = ["cluster_status", "server_version", "stop_all_clusters", "stop_cluster", "stop_clusters"]

logger = logging.getLogger(__name__)


def _settings(settings: LocalClusterSettings | None) -> LocalClusterSettings:
    return settings if settings is not None else LocalClusterSettings()


def _group_alive(pgid: int) -> bool:
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pgid, os.WNOHANG)
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _get_json(url: str, *, timeout_s: float = 2.0) -> dict[str, object] | None:
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as resp:  # noqa: S310 - local http only
            body = json.loads(resp.read().decode("utf-8"))
    except (OSError, ValueError, urllib.error.URLError):
        return None
    return body if isinstance(body, dict) else None


def _cluster_alive(cluster: LocalCluster) -> bool:
    """Whether any node of the cluster still runs."""
    return any(_group_alive(pid) for pid in cluster.pids)


def _stop_group(pgid: int, label: str, timeout_s: float, *, kill: bool = False) -> None:
    """SIGTERM the process group, SIGKILL what is left after ``timeout_s`` (at once with ``kill``: a crash)."""
    steps = ((signal.SIGKILL, 10.0),) if kill else ((signal.SIGTERM, timeout_s), (signal.SIGKILL, 10.0))
    for sig, wait_s in steps:
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            if not _group_alive(pgid):
                return
            time.sleep(0.2)
        if sig == signal.SIGTERM:
            logger.warning("%s did not stop within %.0fs after SIGTERM; killing it", label, timeout_s)
    if _group_alive(pgid):
        raise LocalClusterError(f"could not stop {label} (pid {pgid})", name=label, pid=pgid)


def _stop(cluster: LocalCluster, timeout_s: float) -> None:
    """Stop every node of the cluster (its process groups)."""
    if not cluster.nodes:
        _stop_group(cluster.pid, cluster.name, timeout_s)
    for node in cluster.nodes:
        _stop_group(node.pid, node.name, timeout_s)


def stop_cluster(name: str, *, remove_data: bool = False, settings: LocalClusterSettings | None = None) -> bool:
    """Stop a local cluster (its whole process group) and remove its state file.

    Args:
        name: the cluster name given to :func:`start_cluster`.
        remove_data: also delete its folder (config, data, logs).
        settings: defaults to :class:`LocalClusterSettings` from env.

    Returns:
        True if a process was stopped, False if none ran.

    Raises:
        LocalClusterError: the processes did not go away, even after SIGKILL.
    """
    s = _settings(settings)
    cluster_dir = clusters_dir(s.home) / name
    cluster = read_state(cluster_dir)
    stopped = False
    if cluster is not None and _cluster_alive(cluster):
        logger.info("stopping %s (pids %s)", name, ", ".join(map(str, cluster.pids)))
        _stop(cluster, s.cluster_stop_timeout_s)
        stopped = True
    remove_state(cluster_dir)
    if remove_data:
        shutil.rmtree(cluster_dir, ignore_errors=True)
        with contextlib.suppress(FileNotFoundError):
            name_lock_file(s.home, name).unlink()
    return stopped


def stop_all_clusters(*, remove_data: bool = False, settings: LocalClusterSettings | None = None) -> list[str]:
    """Stop every cluster that has a state file; returns the names stopped."""
    results = stop_clusters(all_clusters=True, remove_data=remove_data, settings=settings)
    return [name for name, stopped in results if stopped]


def stop_clusters(
    *,
    name: str | None = None,
    all_clusters: bool = False,
    remove_data: bool = False,
    settings: LocalClusterSettings | None = None,
) -> list[tuple[str, bool]]:
    """What ``eshybrid cluster down`` does: stop the named cluster, all of them, or the one that runs.

    Args:
        name: stop this cluster.
        all_clusters: stop every cluster with a state file (stale ones are cleared).
        remove_data: also delete each one's folder (config, data, logs).
        settings: defaults to :class:`LocalClusterSettings` from env.

    Returns:
        ``(name, stopped)`` per cluster handled; ``stopped`` is False when no process ran.
        Empty when neither ``name`` nor ``all_clusters`` is given and no cluster runs.

    Raises:
        LocalClusterError: no name given and several clusters run (the message lists them),
            or a process did not go away.
    """
    s = _settings(settings)
    running = {cluster.name: _cluster_alive(cluster) for cluster in _recorded_clusters(s)}
    chosen = clusters_to_stop(running, name=name, all_clusters=all_clusters)
    return [(chosen_name, stop_cluster(chosen_name, remove_data=remove_data, settings=s)) for chosen_name in chosen]


def _recorded_clusters(s: LocalClusterSettings) -> list[LocalCluster]:
    """Every cluster with a readable state file, by name."""
    return [cluster for cluster in map(read_state, state_dirs(s.home)) if cluster is not None]


def cluster_status(*, settings: LocalClusterSettings | None = None) -> list[ClusterStatus]:
    """Every cluster with a state file: whether its process lives and it answers HTTP."""
    out: list[ClusterStatus] = []
    for cluster in _recorded_clusters(_settings(settings)):
        running = _cluster_alive(cluster)
        # A multi-node cluster answers on any node that runs: ask each in turn.
        answering = [(url, h) for url in cluster.urls if running and (h := _get_json(f"{url}/_cluster/health"))]
        url, health = answering[0] if answering else (cluster.url, None)
        problems = [] if running else ["process is gone (stale state; `cluster down` clears it)"]
        problems += [f"node {node.name} (pid {node.pid}) is not running" for node in _dead_nodes(cluster)]
        out.append(
            ClusterStatus(
                cluster=cluster,
                running=running,
                answers=health is not None,
                server_version=server_version(url) if health is not None else None,
                health=str(health.get("status")) if health else None,
                nodes_joined=int(str(health.get("number_of_nodes", 0))) if health else None,
                problems=tuple(problems),
            )
        )
    return out


def _dead_nodes(cluster: LocalCluster) -> list[LocalNode]:
    """The nodes of a multi-node cluster whose process is gone while others run."""
    dead = [node for node in cluster.nodes if not _group_alive(node.pid)]
    return dead if len(dead) < len(cluster.nodes) else []


def server_version(url: str, *, timeout_s: float = 2.0) -> str | None:
    """The version a server reports, or None if it does not answer.

    Elasticsearch's integ-test distribution lacks the ``rest-root`` module, so
    ``GET /`` answers 405 there; the local node's info carries the version too.
    """
    info = _get_json(f"{url}/", timeout_s=timeout_s)
    version = info.get("version") if info is not None else None
    if isinstance(version, dict) and version.get("number"):
        return str(version["number"])
    nodes = _get_json(f"{url}/_nodes/_local?filter_path=nodes.*.version", timeout_s=timeout_s)
    found = nodes.get("nodes") if nodes is not None else None
    if isinstance(found, dict):
        for node in found.values():
            if isinstance(node, dict) and node.get("version"):
                return str(node["version"])
    return None
