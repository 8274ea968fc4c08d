"""``eshybrid cluster up|status|down``: local development clusters (see :mod:`connector.localcluster`)."""

from __future__ import annotations

import argparse
import sys

from connector.cli.common import add_command_group

__all__ = ["register"]


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add the ``cluster`` command and its ``up`` / ``status`` / ``down`` sub-commands."""
    actions = add_command_group(
        subparsers,
        "cluster",
        help="run a local Elasticsearch / OpenSearch for development (no Docker)",
        description="Local single-node clusters from Maven Central, bound to 127.0.0.1. "
        "Cached under $ESHYBRID_HOME (default /var/tmp/eshybrid).",
    )

    up = actions.add_parser("up", help="start a cluster (prints its URL last)")
    up.add_argument("--flavor", choices=("elasticsearch", "opensearch"), required=True)
    up.add_argument("--version", help="server version (default: 9.5.4 for elasticsearch, 3.6.0 for opensearch)")
    up.add_argument("--port", type=int, default=9200, help="HTTP port on 127.0.0.1; 0 = any free port (default 9200)")
    up.add_argument("--name", help="cluster name (default <flavor>-<version>)")
    up.add_argument(
        "--nodes",
        type=int,
        default=1,
        help="JVMs forming the cluster (default 1); with more, HTTP ports --port, --port+1... and every index "
        "gets a shard per node and a replica",
    )
    up.add_argument(
        "--neural",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="opensearch: also install neural-search (server-side hybrid query); default on",
    )
    up.add_argument("--ml", action="store_true", help="opensearch: also install ml-commons (~400 MB download)")
    up.add_argument(
        "--heap-mb",
        type=int,
        default=None,
        help="JVM heap per node in MB (default $ESHYBRID_CLUSTER_HEAP_MB or 512; 384 at most with --nodes)",
    )
    up.set_defaults(func=_cmd_up)

    status = actions.add_parser("status", help="list local clusters and whether they answer")
    status.set_defaults(func=_cmd_status)

    down = actions.add_parser("down", help="stop a cluster (the one that runs, --name NAME or --all)")
    which = down.add_mutually_exclusive_group()
    which.add_argument("--name", help="cluster name (default: the one local cluster that runs)")
    which.add_argument("--all", action="store_true", help="stop every local cluster")
    down.add_argument("--purge", action="store_true", help="also delete its data, logs and config")
    down.set_defaults(func=_cmd_down)


def _cmd_up(args: argparse.Namespace) -> int:
    from connector.localcluster import DEFAULT_OPENSEARCH_PLUGINS, start_cluster

    plugins: tuple[str, ...] = ()
    if args.flavor == "opensearch":
        plugins = DEFAULT_OPENSEARCH_PLUGINS
        if args.neural:
            plugins += ("neural",)
        if args.ml:
            plugins += ("ml",)
    cluster = start_cluster(
        flavor=args.flavor,
        version=args.version,
        port=args.port,
        name=args.name,
        plugins=plugins,
        heap_mb=args.heap_mb,
        nodes=args.nodes,
    )
    print(f"{cluster.name}: {cluster.flavor} {cluster.version} (pid {cluster.pid}, java {cluster.java_major})")
    for node in cluster.nodes:
        print(f"  node {node.name}: {node.url} (transport {node.transport_port}, pid {node.pid})")
    no_root = "" if cluster.has_root_endpoint else "  (GET / answers 405: this distribution has no rest-root module)"
    print(f"check it: curl {cluster.health_url}{no_root}")
    print(cluster.url)
    return 0


def _cmd_status(args: argparse.Namespace) -> int:
    from connector.localcluster import cluster_status

    rows = cluster_status()
    if not rows:
        print("no local clusters")
        return 0
    for row in rows:
        c = row.cluster
        state = "up" if row.answers else ("starting/unresponsive" if row.running else "dead")
        extra = f" health={row.health}" if row.health else ""
        if c.nodes:
            extra += f" nodes={row.nodes_joined or 0}/{len(c.nodes)}"
        plugins = f" plugins={','.join(c.plugins)}" if c.plugins else ""
        print(f"{c.name}\t{state}\t{c.flavor} {c.version}\t{c.url}\tpid={c.pid}{extra}{plugins}")
        for problem in row.problems:
            print(f"  ! {problem}", file=sys.stderr)
    return 0


def _cmd_down(args: argparse.Namespace) -> int:
    from connector.localcluster import stop_clusters

    results = stop_clusters(name=args.name, all_clusters=args.all, remove_data=args.purge)
    if not results:
        print("no local cluster is running")
    for name, stopped in results:
        print(f"{name}: {'stopped' if stopped else 'was not running'}")
    return 0
