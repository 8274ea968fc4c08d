"""The record of each local cluster: ``$ESHYBRID_HOME/clusters/<name>/state.json``, and which clusters to stop.

A cluster folder holds the node's config, data and logs; its ``state.json`` says what
runs there (:class:`LocalCluster`). Reading and writing those files, and the pure choice
of what ``eshybrid cluster down`` stops, live here; starting and stopping processes is
:mod:`connector.localcluster.process`.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path

from connector.errors import LocalClusterError
from connector.localcluster.distribution import Flavor

__all__ = [
    "ClusterStatus",
    "LocalCluster",
    "LocalNode",
    "clusters_dir",
    "clusters_to_stop",
    "name_lock_file",
    "read_state",
    "remove_state",
    "state_dirs",
    "write_state",
]

_STATE_FILE = "state.json"


@dataclass(frozen=True)
class LocalNode:
    """One node of a multi-node local cluster: its ports, process group and folder."""

    name: str
    port: int
    transport_port: int
    pid: int
    node_dir: str
    heap_mb: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@dataclass(frozen=True)
class LocalCluster:
    """A started local cluster (what ``state.json`` holds).

    A single-node cluster has no ``nodes``; a multi-node one lists every node (``url``, ``port`` and
    ``pid`` are then the first node's).
    """

    name: str
    flavor: Flavor
    version: str
    url: str
    port: int
    pid: int
    plugins: tuple[str, ...]
    java_home: str
    java_major: int
    cluster_dir: str
    started_at: float
    nodes: tuple[LocalNode, ...] = ()

    @property
    def pids(self) -> tuple[int, ...]:
        """The process group of every node."""
        return tuple(node.pid for node in self.nodes) or (self.pid,)

    @property
    def urls(self) -> tuple[str, ...]:
        """The HTTP address of every node."""
        return tuple(node.url for node in self.nodes) or (self.url,)

    @property
    def health_url(self) -> str:
        """A URL that answers ``GET`` on every local server (``_cluster/health``)."""
        return f"{self.url}/_cluster/health"

    @property
    def has_root_endpoint(self) -> bool:
        """Whether ``GET <url>/`` answers: Elasticsearch's integ-test distribution has no
        ``rest-root`` module (and Maven Central does not publish it), so it answers 405 there."""
        return self.flavor != "elasticsearch"

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> LocalCluster:
        raw = json.loads(text)
        raw["plugins"] = tuple(raw.get("plugins", ()))
        raw["nodes"] = tuple(LocalNode(**node) for node in raw.get("nodes", ()))
        return cls(**raw)


@dataclass(frozen=True)
class ClusterStatus:
    """A cluster's state file plus what a probe found."""

    cluster: LocalCluster
    running: bool
    answers: bool
    server_version: str | None = None
    health: str | None = None
    nodes_joined: int | None = None
    problems: tuple[str, ...] = field(default_factory=tuple)


def clusters_dir(home: Path) -> Path:
    """The folder holding one folder per cluster."""
    return home / "clusters"


def name_lock_file(home: Path, name: str) -> Path:
    """The lock file that serialises starting (and reusing) the cluster called ``name``."""
    return clusters_dir(home) / f".{name}.lock"


def read_state(cluster_dir: Path) -> LocalCluster | None:
    """The cluster recorded in ``cluster_dir``, or None (no state file, or an unreadable one)."""
    try:
        return LocalCluster.from_json((cluster_dir / _STATE_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError, TypeError):
        return None


def write_state(cluster: LocalCluster) -> None:
    (Path(cluster.cluster_dir) / _STATE_FILE).write_text(cluster.to_json(), encoding="utf-8")


def remove_state(cluster_dir: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        (cluster_dir / _STATE_FILE).unlink()


def state_dirs(home: Path) -> list[Path]:
    """Every cluster folder under ``home``, sorted by name (with or without a state file)."""
    root = clusters_dir(home)
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir() if p.is_dir())


def clusters_to_stop(running: Mapping[str, bool], *, name: str | None = None, all_clusters: bool = False) -> list[str]:
    """Which clusters ``eshybrid cluster down`` stops.

    Args:
        running: every cluster with a state file -> whether its process still runs.
        name: the cluster asked for by name (it need not be known: stopping it is then a no-op).
        all_clusters: every known cluster, running or stale.

    Returns:
        ``[name]`` when named; every known one with ``all_clusters``; else the one that runs
        (``[]`` when none does).

    Raises:
        LocalClusterError: no name and more than one cluster runs (the message lists them).
    """
    if name is not None and all_clusters:
        raise LocalClusterError("pass --name or --all, not both", name=name)
    if name is not None:
        return [name]
    if all_clusters:
        return sorted(running)
    alive = sorted(n for n, is_running in running.items() if is_running)
    if len(alive) > 1:
        raise LocalClusterError(
            f"{len(alive)} local clusters are running ({', '.join(alive)}); "
            "pass --name NAME to stop one, or --all to stop them all",
            running=alive,
        )
    return alive
