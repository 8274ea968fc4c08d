"""What a local cluster is made of, as pure functions: settings, node config, ``jvm.options``, environment.

Nothing here starts a process or touches the network; :mod:`connector.localcluster.process`
writes what these functions render and runs the server with it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from connector.localcluster.distribution import Flavor
from connector.localcluster.java import JavaHome

__all__ = [
    "DEFAULT_FLAVOR_VERSIONS",
    "DEFAULT_OPENSEARCH_PLUGINS",
    "LOCAL_HOST",
    "LocalClusterSettings",
    "MULTI_NODE_HEAP_MB",
    "MULTI_NODE_TEMPLATE",
    "multi_node_template",
    "render_cluster_node_config",
    "render_jvm_options",
    "render_node_config",
    "render_yaml",
    "server_env",
]

DEFAULT_FLAVOR_VERSIONS: Mapping[Flavor, str] = {"elasticsearch": "9.5.4", "opensearch": "3.6.0"}
DEFAULT_OPENSEARCH_PLUGINS: tuple[str, ...] = ("knn",)
LOCAL_HOST = "127.0.0.1"
# A node of a multi-node cluster gets this heap unless told otherwise: three JVMs must fit beside the rest of a
# development machine (the single-node default, 512, times three was more than the shared 24 GB machines spare).
MULTI_NODE_HEAP_MB = 384
# The index template a multi-node cluster is given, so that an index created without settings is spread over the
# nodes and survives one node leaving.
MULTI_NODE_TEMPLATE = "eshybrid-local-multi-node"
ConfigValue = str | int | bool | list[str]


class LocalClusterSettings(BaseSettings):
    """Where local clusters live and how they run (env prefix ``ESHYBRID_``)."""

    model_config = SettingsConfigDict(env_prefix="ESHYBRID_", extra="forbid")

    home: Path = Field(
        default=Path("/var/tmp/eshybrid"),
        description="Cache of downloads, unpacked distributions and cluster folders; must be "
        "traversable by the unprivileged server user (so not under /root).",
    )
    java_home: Path | None = Field(default=None, description="Force this JDK instead of choosing one.")
    jvm_dir: Path = Field(default=Path("/usr/lib/jvm"), description="Where installed JDKs are looked for.")
    mvn: str = Field(default="mvn", description="The Maven executable used to fetch distributions.")
    cluster_user: str = Field(
        default="eshybrid",
        description="Unprivileged system user the servers run as when started by root ('' = never switch).",
    )
    cluster_heap_mb: int = Field(default=512, ge=128, le=65536, description="JVM heap (-Xms = -Xmx) per server.")
    cluster_startup_timeout_s: float = Field(
        default=300.0, gt=0, le=3600, description="How long to wait for yellow/green health."
    )
    cluster_stop_timeout_s: float = Field(
        default=60.0, gt=0, le=600, description="How long to wait after SIGTERM before SIGKILL."
    )


def render_node_config(
    flavor: Flavor,
    *,
    name: str,
    port: int,
    data_dir: Path,
    logs_dir: Path,
) -> dict[str, ConfigValue]:
    """The ``elasticsearch.yml`` / ``opensearch.yml`` settings of a local single node.

    Only settings that exist in the integ-test distributions: x-pack-security is
    the one security module there (ES); OpenSearch's integ-test zip has no
    security plugin, so no ``plugins.security.*`` key (unknown keys fail startup).
    """
    config: dict[str, ConfigValue] = {
        "cluster.name": f"eshybrid-{name}",
        "node.name": name,
        "network.host": LOCAL_HOST,
        "http.port": port,
        "discovery.type": "single-node",
        "path.data": str(data_dir),
        "path.logs": str(logs_dir),
        # A nearly full dev disk must not turn indices read-only mid-test.
        "cluster.routing.allocation.disk.threshold_enabled": False,
    }
    if flavor == "elasticsearch":
        config["xpack.security.enabled"] = False
    return config


def render_cluster_node_config(
    flavor: Flavor,
    *,
    cluster_name: str,
    node_names: Sequence[str],
    index: int,
    ports: Sequence[int],
    transport_ports: Sequence[int],
    data_dir: Path,
    logs_dir: Path,
) -> dict[str, ConfigValue]:
    """The settings of node ``index`` of a multi-node local cluster (every node master-eligible and data).

    The nodes find each other through their transport ports on 127.0.0.1 (``discovery.seed_hosts``) and bootstrap
    from the list of every node's name (OpenSearch calls it ``initial_cluster_manager_nodes``).
    """
    if not len(node_names) == len(ports) == len(transport_ports) >= 2 or not 0 <= index < len(node_names):
        raise ValueError(f"a multi-node cluster needs >= 2 nodes with a port and a transport port each; node {index}")
    config = render_node_config(flavor, name=node_names[index], port=ports[index], data_dir=data_dir, logs_dir=logs_dir)
    del config["discovery.type"]
    config["cluster.name"] = f"eshybrid-{cluster_name}"
    config["transport.port"] = transport_ports[index]
    config["discovery.seed_hosts"] = [f"{LOCAL_HOST}:{port}" for port in transport_ports]
    bootstrap = "cluster.initial_master_nodes" if flavor == "elasticsearch" else "cluster.initial_cluster_manager_nodes"
    config[bootstrap] = list(node_names)
    return config


def multi_node_template(nodes: int) -> dict[str, object]:
    """The index template of a multi-node cluster: every index (not hidden ones) gets a shard per node and a
    replica, so a node can leave without losing data; lowest priority, so any other template wins."""
    return {
        "index_patterns": ["*"],
        "priority": 0,
        "template": {"settings": {"index": {"number_of_shards": nodes, "number_of_replicas": 1}}},
        "_meta": {"managed_by": "eshybrid cluster up --nodes"},
    }


def render_yaml(config: Mapping[str, ConfigValue]) -> str:
    """Flat ``key: value`` YAML (keys are dotted setting names)."""
    lines = ["# written by eshybrid (connector.localcluster); regenerated on every start"]
    for key, value in config.items():
        if isinstance(value, bool):
            text = "true" if value else "false"
        elif isinstance(value, int):
            text = str(value)
        else:
            text = json.dumps(value)
        lines.append(f"{key}: {text}")
    return "\n".join(lines) + "\n"


def render_jvm_options(text: str, *, logs_dir: Path, data_dir: Path) -> str:
    """The distribution's ``jvm.options`` with relative file paths made absolute.

    The stock file writes GC logs, heap dumps and crash files relative to the
    server's working directory, which is the (read-only, shared) distribution.
    """
    out = []
    for line in text.splitlines():
        line = line.replace("file=logs/", f"file={logs_dir}/")
        line = line.replace("-XX:HeapDumpPath=data", f"-XX:HeapDumpPath={data_dir}")
        line = line.replace("-XX:ErrorFile=logs/", f"-XX:ErrorFile={logs_dir}/")
        out.append(line)
    return "\n".join(out) + "\n"


def server_env(
    flavor: Flavor,
    *,
    java: JavaHome,
    config_dir: Path,
    tmp_dir: Path,
    heap_mb: int,
    base: Mapping[str, str],
    library_path: Path | None = None,
) -> dict[str, str]:
    """Environment for the server process (JDK, config folder, heap, native library folder)."""
    prefix = "ES" if flavor == "elasticsearch" else "OPENSEARCH"
    env = {k: v for k, v in base.items() if not k.startswith(("ES_", "OPENSEARCH_"))}
    env.pop("JAVA_TOOL_OPTIONS", None)
    env["JAVA_HOME"] = str(java.path)
    env[f"{prefix}_JAVA_HOME"] = str(java.path)
    env[f"{prefix}_PATH_CONF"] = str(config_dir)
    env[f"{prefix}_TMPDIR"] = str(tmp_dir)
    java_opts = f"-Xms{heap_mb}m -Xmx{heap_mb}m"
    if library_path is not None:
        java_opts += f" -Djava.library.path={library_path}"
    env[f"{prefix}_JAVA_OPTS"] = java_opts
    return env
