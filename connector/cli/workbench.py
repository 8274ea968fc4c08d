"""``eshybrid workbench``: the relevance workbench against one index, in the browser.

Cluster and embedding service as for ``eshybrid search`` (``--url`` / ``ESHYBRID_URL``, ``--embed-url`` /
``ESHYBRID_EMBED_URL``; without an embedding service only bm25 works). Without ``--api-key-env`` it listens on
127.0.0.1 and asks no login; with it, every client must bring that token (a browser logs in once at /ui/login).
"""

from __future__ import annotations

import argparse
import os
from typing import Any

from connector.cli.common import add_managed_cluster_flags, managed_cluster_settings
from connector.cluster.settings import ConnectionSettings
from connector.errors import ConfigError

__all__ = ["register"]


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add ``workbench``."""
    parser = subparsers.add_parser(
        "workbench",
        help="compare two search configurations side by side in the browser and rate the hits",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--index", required=True, help="index or alias to search")
    parser.add_argument("--url", help="cluster URL (default $ESHYBRID_URL)")
    add_managed_cluster_flags(parser)
    parser.add_argument("--embed-url", help="embedding service base URL (default $ESHYBRID_EMBED_URL)")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8090, help="port (default 8090; 0 picks a free one)")
    parser.add_argument(
        "--api-key-env",
        metavar="VAR",
        help="name of the environment variable holding the token clients must bring (required off localhost)",
    )
    parser.add_argument("--export-dir", default="workbench-judgments", help="where Export writes the BEIR folder")
    parser.add_argument("--judgments-index", default="eshybrid-judgments", help="where grades are stored")
    parser.set_defaults(func=_cmd_workbench)


def _api_key(args: argparse.Namespace) -> Any:
    from pydantic import SecretStr

    if not args.api_key_env:
        if args.host not in ("127.0.0.1", "localhost", "::1"):
            raise ConfigError(
                f"--host {args.host} serves other machines: give --api-key-env VAR (a token in $VAR)", field="host"
            )
        return None
    value = os.environ.get(args.api_key_env)
    if not value:
        raise ConfigError(f"${args.api_key_env} is empty: put the token clients must bring in it", field="api_key")
    return SecretStr(value)


def _cmd_workbench(args: argparse.Namespace) -> int:
    from connector.services.embedding import EmbeddingClient
    from connector.workbench import WorkbenchServer, build_workbench

    api_key = _api_key(args)
    settings = ConnectionSettings()
    cluster = managed_cluster_settings(settings, args).connect(args.url)
    url = args.embed_url or settings.embed_url
    embedder = (
        EmbeddingClient.from_settings(settings, url, missing="knn and hybrid modes embed the query") if url else None
    )
    workbench = build_workbench(
        cluster,
        args.index,
        embedder=embedder,
        export_dir=args.export_dir,
        api_key=api_key,
        judgments_index=args.judgments_index,
    )
    server = WorkbenchServer(workbench, host=args.host, port=args.port)
    print(f"workbench for {args.index}: open {server.url}", flush=True)
    if embedder is None:
        print("no embedding service (--embed-url / $ESHYBRID_EMBED_URL): only bm25 sides will run", flush=True)
    try:
        server.serve_forever()
    finally:
        server.stop()
    return 0
