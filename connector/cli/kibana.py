"""``eshybrid kibana export|defaults``: Kibana / OpenSearch Dashboards saved objects as ndjson.

``export`` reads the real mappings from a cluster; ``defaults`` writes what
``docker/kibana`` and ``docker/opensearch-dashboards`` ship (built from the
mappings package's builders, no cluster needed). The objects themselves are
built by :mod:`connector.kibana`.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from connector.cli.common import add_command_group

__all__ = ["default_bundles", "demo_index_body", "demo_index_mapping", "register"]

logger = logging.getLogger(__name__)

_FLAVORS = ("auto", "kibana", "opensearch-dashboards")
# The demo catalogue's index (examples/catalogue): what docker/*/ ships a data view for.
DEFAULT_INDEX = "products"


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
    defaults.add_argument("--index", default=DEFAULT_INDEX, help=f"hybrid index name (default {DEFAULT_INDEX})")
    defaults.set_defaults(func=_cmd_defaults)


def _connect(url: str | None) -> Any:
    from connector.cluster.settings import ConnectionSettings

    return ConnectionSettings().connect(url)


def _mapping_or(cluster: Any, index: str, fallback: Mapping[str, Any]) -> Mapping[str, Any]:
    """The index's real mapping when it exists, else the mapping its builder will create."""
    if cluster.index_exists(index):
        mapping: Mapping[str, Any] = cluster.get_mapping(index)
        return mapping
    logger.info("%s does not exist yet; using the mapping eshybrid will create", index)
    return fallback


def _write(path: Path, objects: Sequence[dict[str, Any]]) -> None:
    from connector.kibana import to_ndjson

    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(to_ndjson(objects), encoding="utf-8")
    print(f"wrote {path} ({len(objects)} objects)")


def _cmd_export(args: argparse.Namespace) -> int:
    from connector import kibana
    from connector.jobs.store import dead_letter_index_body, jobs_index_body
    from connector.search.log import search_log_mapping

    with _connect(args.url) as cluster:
        flavor = kibana.dashboards_flavor(cluster.capabilities.flavor if args.flavor == "auto" else args.flavor)
        for index in args.index:
            objects = kibana.hybrid_index_objects(index, cluster.get_mapping(index), flavor=flavor)
            _write(args.out / f"{_file_stem(index)}.ndjson", objects)
        if args.dashboards:
            jobs = _mapping_or(cluster, args.jobs_index, jobs_index_body()["mappings"])
            dead = _mapping_or(cluster, args.dead_letter_index, dead_letter_index_body()["mappings"])
            _write(args.out / "eshybrid-jobs.ndjson",
                   kibana.jobs_objects(jobs, flavor=flavor, jobs_index=args.jobs_index,
                                       dead_letter_mapping=dead, dead_letter_index=args.dead_letter_index))  # fmt: skip
            log = _mapping_or(cluster, args.search_log_index, search_log_mapping())
            _write(args.out / "eshybrid-search-log.ndjson",
                   kibana.search_log_objects(log, flavor=flavor, index=args.search_log_index))  # fmt: skip
    return 0


def _file_stem(index: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in index) or "index"


def default_bundles(*, index: str = DEFAULT_INDEX) -> dict[str, dict[str, list[dict[str, Any]]]]:
    """What ``docker/<app>/<file>.ndjson`` holds: ``{app folder: {file name: objects}}``.

    Built from the builders' mappings: the hybrid index as the demo catalogue is indexed
    (Elasticsearch 9.5.4 / OpenSearch 3.6.0), the jobs, dead-letter and search-log indices.
    """
    from connector import kibana
    from connector.jobs.store import dead_letter_index_body, jobs_index_body
    from connector.search.log import search_log_mapping

    bundles: dict[str, dict[str, list[dict[str, Any]]]] = {}
    for folder, flavor, cluster_flavor, version in (
        ("kibana", "kibana", "elasticsearch", "9.5.4"),
        ("opensearch-dashboards", "opensearch-dashboards", "opensearch", "3.6.0"),
    ):
        mapping = demo_index_mapping(cluster_flavor, version)
        bundles[folder] = {
            f"{_file_stem(index)}.ndjson": kibana.hybrid_index_objects(index, mapping, flavor=flavor),  # type: ignore[arg-type]
            "eshybrid-jobs.ndjson": kibana.jobs_objects(
                jobs_index_body()["mappings"],
                flavor=flavor,  # type: ignore[arg-type]
                dead_letter_mapping=dead_letter_index_body()["mappings"],
            ),
            "eshybrid-search-log.ndjson": kibana.search_log_objects(search_log_mapping(), flavor=flavor),  # type: ignore[arg-type]
        }
    return bundles


def demo_index_body(caps: Any) -> dict[str, Any]:
    """The ``PUT`` body of the demo catalogue's hybrid index, from the mappings package's builders.

    Args:
        caps: the target server's :class:`connector.cluster.capabilities.Capabilities`.
    """
    from mappings import TextField, VectorField, build_index_body

    return build_index_body(
        caps,
        text_fields=[TextField("title", keyword_subfield=True), TextField("text")],
        vector_fields=[VectorField(dims=384, model_id="sentence-transformers/all-MiniLM-L6-v2")],
        extra_properties={
            "brand": {"type": "keyword"},
            "category": {"type": "keyword"},
            "price": {"type": "float"},
            "in_stock": {"type": "boolean"},
            "rating": {"type": "float"},
        },
    )


def demo_index_mapping(cluster_flavor: str, version: str) -> dict[str, Any]:
    """The demo index's mapping for a server that is not at hand (``elasticsearch``, ``9.5.4``)."""
    from connector.cluster.capabilities import Capabilities

    caps = Capabilities.from_version(cluster_flavor, version)  # type: ignore[arg-type]
    mapping: dict[str, Any] = demo_index_body(caps)["mappings"]
    return mapping


def _cmd_defaults(args: argparse.Namespace) -> int:
    for folder, files in default_bundles(index=args.index).items():
        for name, objects in files.items():
            _write(args.out / folder / name, objects)
    return 0
