"""``eshybrid kibana export|defaults``: Kibana / OpenSearch Dashboards saved objects as ndjson.

``export`` reads the real mappings from a cluster; ``defaults`` writes what
``docker/kibana`` and ``docker/opensearch-dashboards`` ship (built from the
mappings package's builders, no cluster needed). The objects and the bundles are
built by :mod:`connector.kibana`.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterable
from pathlib import Path

from connector.cli.common import add_command_group

__all__ = ["register"]

_FLAVORS = ("auto", "kibana", "opensearch-dashboards")


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add the ``kibana`` command and its ``export`` / ``defaults`` sub-commands."""
    actions = add_command_group(
        subparsers,
        "kibana",
        help="write Kibana / OpenSearch Dashboards saved objects (data views, dashboards)",
        description="Saved objects generated from real index mappings, importable with the "
        "Saved Objects API (POST /api/saved_objects/_import).",
    )

    export = actions.add_parser(
        "export",
        help="data views for indices of a cluster (+ jobs and search-log dashboards)",
        description="Reads each index's mapping and writes <out>/<index>.ndjson; also writes the jobs "
        "and search-log dashboards from those indices' mappings (or their builders when absent).",
    )
    export.add_argument("--index", action="append", required=True, metavar="NAME",
                        help="index or alias to write a data view for (repeatable)")  # fmt: skip
    export.add_argument("--url", help="cluster URL (default $ESHYBRID_URL); credentials from $ESHYBRID_API_KEY "
                        "or $ESHYBRID_USERNAME/$ESHYBRID_PASSWORD, CA from $ESHYBRID_CA_CERTS")  # fmt: skip
    export.add_argument(
        "--out", type=Path, default=Path("kibana-objects"), help="output folder (default ./kibana-objects)"
    )
    export.add_argument("--flavor", choices=_FLAVORS, default="auto",
                        help="target app; auto: kibana for Elasticsearch, opensearch-dashboards for OpenSearch")  # fmt: skip
    export.add_argument("--jobs-index", default="eshybrid-jobs", help="job documents index (default eshybrid-jobs)")
    export.add_argument("--dead-letter-index", default="eshybrid-dead-letters",
                        help="dead-letter index (default eshybrid-dead-letters)")  # fmt: skip
    export.add_argument("--search-log-index", default="eshybrid-search-log",
                        help="search log index (default eshybrid-search-log)")  # fmt: skip
    export.add_argument("--dashboards", action=argparse.BooleanOptionalAction, default=True,
                        help="also write the jobs and search-log dashboards (default on)")  # fmt: skip
    export.set_defaults(func=_cmd_export)

    defaults = actions.add_parser(
        "defaults",
        help="write the objects docker/ ships, from the builders' mappings (no cluster)",
        description="Regenerates docker/kibana and docker/opensearch-dashboards: eshybrid kibana defaults --out docker",
    )
    defaults.add_argument("--out", type=Path, default=Path("docker"),
                          help="folder holding kibana/ and opensearch-dashboards/ (default ./docker)")  # fmt: skip
    # The default is the library's (connector.kibana.export.DEFAULT_INDEX, the demo catalogue's index).
    defaults.add_argument("--index", help="hybrid index name (default products)")
    defaults.set_defaults(func=_cmd_defaults)


def _print_written(written: Iterable[tuple[Path, int]]) -> None:
    for path, count in written:
        print(f"wrote {path} ({count} objects)")


def _cmd_export(args: argparse.Namespace) -> int:
    from connector.cluster.settings import ConnectionSettings
    from connector.kibana import export_bundle, write_bundle

    with ConnectionSettings().connect(args.url) as cluster:
        bundle = export_bundle(
            cluster,
            args.index,
            flavor=args.flavor,
            dashboards=args.dashboards,
            jobs_index=args.jobs_index,
            dead_letter_index=args.dead_letter_index,
            search_log_index=args.search_log_index,
        )
    _print_written(write_bundle(args.out, bundle))
    return 0


def _cmd_defaults(args: argparse.Namespace) -> int:
    from connector.kibana import default_bundles, write_bundle

    bundles = default_bundles(index=args.index) if args.index else default_bundles()
    for folder, bundle in bundles.items():
        _print_written(write_bundle(args.out / folder, bundle))
    return 0
