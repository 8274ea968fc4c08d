"""What ``eshybrid kibana export`` and ``eshybrid kibana defaults`` write: bundles of saved objects as ndjson files.

``export`` reads the real mappings from a cluster; ``defaults`` builds what ``docker/kibana``
and ``docker/opensearch-dashboards`` ship from the mappings package's builders (no cluster).
A bundle is ``{file name: objects}``; each file imports on its own.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Final, Literal

from connector.cluster.capabilities import Capabilities, Flavor
from connector.cluster.client import Cluster
from connector.jobs.store import dead_letter_index_body, jobs_index_body
from connector.kibana.apps import (
    KIBANA,
    OPENSEARCH_DASHBOARDS,
    DashboardsApp,
    DashboardsFlavor,
    SavedObject,
    dashboards_flavor,
)
from connector.kibana.dashboards import jobs_objects, search_log_objects
from connector.kibana.objects import hybrid_index_objects, to_ndjson
from connector.kibana.ubi import ubi_objects
from connector.search.log import search_log_mapping
from mappings import TextField, VectorField, build_index_body
from mappings.system import UBI_EVENTS_INDEX, UBI_QUERIES_INDEX, ubi_events_index_body, ubi_queries_index_body

__all__ = [
    "DEFAULT_INDEX",
    "Bundle",
    "default_bundles",
    "demo_index_body",
    "demo_index_mapping",
    "export_bundle",
    "file_stem",
    "write_bundle",
]

logger = logging.getLogger(__name__)

Bundle = dict[str, list[SavedObject]]
"""File name -> the saved objects written to it."""

# The demo catalogue's index (examples/catalogue): what docker/*/ ships a data view for.
DEFAULT_INDEX: Final = "products"
_JOBS_FILE: Final = "eshybrid-jobs.ndjson"
_SEARCH_LOG_FILE: Final = "eshybrid-search-log.ndjson"
_UBI_FILE: Final = "eshybrid-ubi.ndjson"


def file_stem(index: str) -> str:
    """``index`` as a file name stem (characters other than ``[A-Za-z0-9-_.]`` become ``_``)."""
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in index) or "index"


def _mapping_or(cluster: Cluster, index: str, fallback: Mapping[str, Any]) -> Mapping[str, Any]:
    """The index's real mapping when it exists, else the mapping its builder will create."""
    if cluster.index_exists(index):
        return cluster.get_mapping(index)
    logger.info("%s does not exist yet; using the mapping eshybrid will create", index)
    return fallback


def export_bundle(
    cluster: Cluster,
    indices: Sequence[str],
    *,
    flavor: DashboardsFlavor | Literal["auto"] = "auto",
    dashboards: bool = True,
    jobs_index: str = "eshybrid-jobs",
    dead_letter_index: str = "eshybrid-dead-letters",
    search_log_index: str = "eshybrid-search-log",
) -> Bundle:
    """Saved objects for indices of a cluster, from their real mappings.

    Args:
        cluster: the connected cluster.
        indices: indices or aliases to write a data view for (``<index>.ndjson`` each).
        flavor: the target app; ``auto``: Kibana for Elasticsearch, Dashboards for OpenSearch.
        dashboards: also the jobs, search-log and shoppers (UBI) dashboards, from those indices' mappings (or
            their builders' when the indices do not exist yet).
        jobs_index: the job documents index.
        dead_letter_index: the dead-letter index.
        search_log_index: the search log index.

    Raises:
        ConfigError: an unknown flavor.
    """
    app = dashboards_flavor(cluster.capabilities.flavor if flavor == "auto" else flavor)
    bundle: Bundle = {}
    for index in indices:
        bundle[f"{file_stem(index)}.ndjson"] = hybrid_index_objects(index, cluster.get_mapping(index), flavor=app)
    if dashboards:
        jobs = _mapping_or(cluster, jobs_index, jobs_index_body()["mappings"])
        dead = _mapping_or(cluster, dead_letter_index, dead_letter_index_body()["mappings"])
        bundle[_JOBS_FILE] = jobs_objects(
            jobs, flavor=app, jobs_index=jobs_index, dead_letter_mapping=dead, dead_letter_index=dead_letter_index
        )
        log = _mapping_or(cluster, search_log_index, search_log_mapping())
        bundle[_SEARCH_LOG_FILE] = search_log_objects(log, flavor=app, index=search_log_index)
        queries = _mapping_or(cluster, UBI_QUERIES_INDEX, ubi_queries_index_body()["mappings"])
        events = _mapping_or(cluster, UBI_EVENTS_INDEX, ubi_events_index_body()["mappings"])
        bundle[_UBI_FILE] = ubi_objects(queries, events, flavor=app)
    return bundle


def write_bundle(out: Path, bundle: Mapping[str, Sequence[SavedObject]]) -> Iterator[tuple[Path, int]]:
    """Write each file of ``bundle`` under ``out`` as ndjson; yields ``(path, object count)`` per file written."""
    for name, objects in bundle.items():
        path = out / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(to_ndjson(objects), encoding="utf-8")
        yield path, len(objects)


def demo_index_body(caps: Capabilities) -> dict[str, Any]:
    """The ``PUT`` body of the demo catalogue's hybrid index, from the mappings package's builders.

    Args:
        caps: the target server's :class:`connector.cluster.capabilities.Capabilities`.
    """
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


def demo_index_mapping(cluster_flavor: Flavor, version: str) -> dict[str, Any]:
    """The demo index's mapping for a server that is not at hand (``elasticsearch``, ``9.5.4``)."""
    caps = Capabilities.from_version(cluster_flavor, version)
    mapping: dict[str, Any] = demo_index_body(caps)["mappings"]
    return mapping


def default_bundles(*, index: str = DEFAULT_INDEX) -> dict[str, Bundle]:
    """What ``docker/<app>/<file>.ndjson`` holds: ``{app folder: bundle}``.

    Built from the builders' mappings: the hybrid index as the demo catalogue is indexed
    (Elasticsearch 9.5.4 / OpenSearch 3.6.0), the jobs, dead-letter and search-log indices, the UBI indexes.
    """
    bundles: dict[str, Bundle] = {}
    servers: tuple[tuple[DashboardsApp, Flavor, str], ...] = (
        (KIBANA, "elasticsearch", "9.5.4"),
        (OPENSEARCH_DASHBOARDS, "opensearch", "3.6.0"),
    )
    for app, cluster_flavor, version in servers:
        mapping = demo_index_mapping(cluster_flavor, version)
        bundles[app.flavor] = {
            f"{file_stem(index)}.ndjson": hybrid_index_objects(index, mapping, flavor=app),
            _JOBS_FILE: jobs_objects(
                jobs_index_body()["mappings"], flavor=app, dead_letter_mapping=dead_letter_index_body()["mappings"]
            ),
            _SEARCH_LOG_FILE: search_log_objects(search_log_mapping(), flavor=app),
            _UBI_FILE: ubi_objects(
                ubi_queries_index_body()["mappings"], ubi_events_index_body()["mappings"], flavor=app
            ),
        }
    return bundles
