"""Every field a generated saved object names exists in the real index mapping (ES 9, OpenSearch 3).

The hybrid index is created with the mappings package's builders on the dev clusters, so the
mapping read back is the server's own (types, multi-fields, objects as the server stores them).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from connector import connect, kibana
from connector.cli import main
from connector.cluster.client import Cluster
from connector.jobs.store import dead_letter_index_body, jobs_index_body
from connector.search.log import search_log_index_body
from tests.fixtures.kibana import named_fields

pytestmark = [pytest.mark.integration]

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(params=[pytest.param("es9", marks=pytest.mark.es9), pytest.param("os3", marks=pytest.mark.os3)])
def url(request: pytest.FixtureRequest) -> str:
    return str(request.getfixturevalue(f"{request.param}_url"))


@pytest.fixture
def cluster(url: str) -> Iterator[Cluster]:
    with connect(url) as c:
        yield c


@pytest.fixture
def make_index(cluster: Cluster) -> Iterator[Callable[[str, dict[str, Any]], str]]:
    """Create an index under a fresh uuid name (deleted afterwards); returns its name."""
    created: list[str] = []

    def make(kind: str, body: dict[str, Any]) -> str:
        name = f"eshybrid-test-{kind}-{uuid.uuid4().hex[:12]}"
        cluster.create_index(name, body)
        created.append(name)
        return name

    yield make
    for name in created:
        cluster.delete_index(name)


def _check_fields(objects: list[dict[str, Any]], real_mapping: dict[str, Any], where: str) -> None:
    fields = kibana.mapping_fields(real_mapping)
    for obj in objects:
        missing = named_fields(obj) - set(fields)
        assert not missing, f"{where}: {obj['type']} {obj['id']} names {sorted(missing)}, not in the real mapping"


def test_hybrid_index_data_view_matches_the_real_mapping(cluster: Cluster, index_name: str) -> None:
    caps = cluster.capabilities
    cluster.create_index(index_name, kibana.demo_index_body(caps))
    real = cluster.get_mapping(index_name)
    flavor = kibana.dashboards_flavor(caps.flavor)
    view, search = kibana.hybrid_index_objects(index_name, real, flavor=flavor)
    _check_fields([view, search], real, index_name)
    assert kibana.mapping_fields(real)["embedding"] == caps.vector_field_type
    assert json.loads(view["attributes"]["sourceFilters"]) == [{"value": "embedding"}]
    assert {"title", "text", "eshybrid_meta.embedding.model_id"} <= set(search["attributes"]["columns"])
    if flavor == "kibana":
        # The labels come from the _meta the server stored, not from the builder's copy.
        attrs = json.loads(view["attributes"]["fieldAttrs"])
        assert "eshybrid_meta.embedding.model_id" in attrs and "title" in attrs


def test_shipped_objects_match_real_mappings(
    cluster: Cluster, make_index: Callable[[str, dict[str, Any]], str]
) -> None:
    """docker/<app>/*.ndjson (what compose imports) against indices built by the same builders."""
    caps = cluster.capabilities
    folder = "kibana" if caps.flavor == "elasticsearch" else "opensearch-dashboards"
    real = {
        "products.ndjson": [make_index("products", kibana.demo_index_body(caps))],
        "eshybrid-jobs.ndjson": [make_index("jobs", jobs_index_body()), make_index("dl", dead_letter_index_body())],
        "eshybrid-search-log.ndjson": [make_index("log", search_log_index_body())],
    }
    for name, indices in real.items():
        mapping: dict[str, Any] = {"properties": {}}
        for index in indices:  # a bundle over two indices: a field must exist in one of them
            mapping["properties"].update(cluster.get_mapping(index)["properties"])
        objects = [json.loads(line) for line in (REPO / "docker" / folder / name).read_text().splitlines()]
        _check_fields(objects, mapping, f"docker/{folder}/{name}")


def test_cli_export_from_a_real_cluster(
    cluster: Cluster, url: str, index_name: str, make_index: Callable[[str, dict[str, Any]], str], tmp_path: Path
) -> None:
    caps = cluster.capabilities
    cluster.create_index(index_name, kibana.demo_index_body(caps))
    jobs = make_index("jobs", jobs_index_body())
    log = make_index("log", search_log_index_body())
    absent = f"eshybrid-test-absent-{uuid.uuid4().hex[:8]}"
    rc = main(["kibana", "export", "--index", index_name, "--url", url, "--out", str(tmp_path),
               "--jobs-index", jobs, "--search-log-index", log, "--dead-letter-index", absent])  # fmt: skip
    assert rc == 0
    written = sorted(p.name for p in tmp_path.glob("*.ndjson"))
    dashboards = ["eshybrid-jobs.ndjson", "eshybrid-search-log.ndjson", "eshybrid-ubi.ndjson"]  # ubi: the shoppers'
    assert written == sorted([f"{index_name}.ndjson", *dashboards])
    expected_flavor = "kibana" if caps.flavor == "elasticsearch" else "opensearch-dashboards"
    for name, source in ((f"{index_name}.ndjson", index_name), ("eshybrid-jobs.ndjson", jobs),
                         ("eshybrid-search-log.ndjson", log)):  # fmt: skip
        objects = [json.loads(line) for line in (tmp_path / name).read_text().splitlines()]
        assert objects and all({"type", "id", "attributes", "references"} <= set(o) for o in objects)
        assert ("typeMigrationVersion" in objects[0]) == (expected_flavor == "kibana")
        assert objects[0]["type"] == "index-pattern" and objects[0]["attributes"]["title"] == source
        # The jobs bundle also covers the (absent) dead-letter index, from its builder's mapping.
        absent_views = {o["id"] for o in objects if o["attributes"]["title"] == absent}
        assert len(absent_views) == (1 if name == "eshybrid-jobs.ndjson" else 0)
        own = [
            o
            for o in objects
            if o["id"] not in absent_views and not any(r["id"] in absent_views for r in o["references"])
        ]
        _check_fields(own, cluster.get_mapping(source), name)
