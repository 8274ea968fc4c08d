"""Saved objects generated from mappings: shape the import API needs, fields from the mapping only."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from connector import kibana
from connector.cli import build_parser
from connector.errors import ConfigError
from connector.jobs.store import dead_letter_index_body, jobs_index_body
from connector.kibana import default_bundles, demo_index_mapping
from connector.search.log import search_log_mapping
from tests.fixtures.kibana import named_fields

REPO = Path(__file__).resolve().parents[4]
FLAVORS = ("kibana", "opensearch-dashboards")
CLUSTER_OF = {"kibana": ("elasticsearch", "9.5.4"), "opensearch-dashboards": ("opensearch", "3.6.0")}
# Attributes stored as JSON text inside the saved object.
JSON_TEXT_ATTRS = ("sourceFilters", "fieldAttrs", "fieldFormatMap", "runtimeFieldMap", "fields", "panelsJSON",
                   "optionsJSON", "visState", "uiStateJSON")  # fmt: skip


def _bundles(flavor: str) -> dict[str, tuple[list[dict[str, Any]], dict[str, Any]]]:
    """file -> (objects, the mapping each object was generated from)."""
    cluster_flavor, version = CLUSTER_OF[flavor]
    hybrid = demo_index_mapping(cluster_flavor, version)
    return {
        "hybrid": (kibana.hybrid_index_objects("products", hybrid, flavor=flavor), hybrid),  # type: ignore[arg-type]
        "jobs": (kibana.jobs_objects(jobs_index_body()["mappings"], flavor=flavor), jobs_index_body()["mappings"]),  # type: ignore[arg-type]
        "log": (kibana.search_log_objects(search_log_mapping(), flavor=flavor), search_log_mapping()),  # type: ignore[arg-type]
    }


# -- reading mappings ----------------------------------------------------------------


def test_mapping_fields_flattens_objects_and_multi_fields() -> None:
    mapping = {
        "properties": {
            "title": {"type": "text", "fields": {"keyword": {"type": "keyword"}}},
            "meta": {"properties": {"a": {"type": "keyword"}, "b": {"properties": {"c": {"type": "long"}}}}},
            "off": {"type": "object", "enabled": False},
            "nested": {"type": "nested", "properties": {"n": {"type": "integer"}}},
        }
    }
    assert kibana.mapping_fields(mapping) == {
        "title": "text", "title.keyword": "keyword", "meta.a": "keyword", "meta.b.c": "long", "nested.n": "integer"
    }  # fmt: skip


@pytest.mark.parametrize("flavor", FLAVORS)
def test_vector_fields_found_on_both_flavors(flavor: str) -> None:
    mapping = demo_index_mapping(*CLUSTER_OF[flavor])
    assert kibana.vector_fields(mapping) == ["embedding"]
    expected_type = "dense_vector" if flavor == "kibana" else "knn_vector"
    assert kibana.mapping_fields(mapping)["embedding"] == expected_type


def test_time_field_prefers_the_given_date_fields() -> None:
    mapping = {"properties": {"at": {"type": "date"}, "timestamp": {"type": "date"}, "x": {"type": "keyword"}}}
    assert kibana.time_field(mapping, preferred=("x", "at")) == "at"
    assert kibana.time_field(mapping) == "timestamp"
    assert kibana.time_field({"properties": {"x": {"type": "keyword"}}}) is None


def test_dashboards_flavor() -> None:
    assert kibana.dashboards_flavor("elasticsearch") == "kibana"
    assert kibana.dashboards_flavor("opensearch") == "opensearch-dashboards"
    with pytest.raises(ConfigError):
        kibana.dashboards_flavor("solr")


# -- the data view of a hybrid index ----------------------------------------------------


@pytest.mark.parametrize("flavor", FLAVORS)
def test_data_view_hides_vectors_and_keeps_text_and_model_id(flavor: str) -> None:
    mapping = demo_index_mapping(*CLUSTER_OF[flavor])
    view, search = kibana.hybrid_index_objects("products", mapping, flavor=flavor)  # type: ignore[arg-type]
    filters = [f["value"] for f in json.loads(view["attributes"]["sourceFilters"])]
    assert filters == ["embedding"]
    for visible in ("title", "text", "eshybrid_meta.embedding.model_id"):
        assert visible not in filters
        assert visible in search["attributes"]["columns"]
    assert "embedding" not in search["attributes"]["columns"]
    assert search["references"] == [
        {"name": "kibanaSavedObjectMeta.searchSourceJSON.index", "type": "index-pattern", "id": view["id"]}
    ]
    if flavor == "kibana":
        attrs = json.loads(view["attributes"]["fieldAttrs"])
        assert attrs["eshybrid_meta.embedding.model_id"]["customLabel"] == "Embedding model (embedding)"
        assert "all-MiniLM-L6-v2" in attrs["title"]["customDescription"]
        assert view["attributes"]["name"] == "eshybrid: products"


def test_data_view_of_an_index_eshybrid_did_not_build() -> None:
    mapping = {"properties": {"body": {"type": "text"}, "vec": {"type": "dense_vector", "dims": 3}}}
    view, search = kibana.hybrid_index_objects("legacy", mapping, flavor="kibana")
    assert json.loads(view["attributes"]["sourceFilters"]) == [{"value": "vec"}]
    assert search["attributes"]["columns"] == ["body"]
    assert "timeFieldName" not in view["attributes"]


def test_time_field_must_be_a_date() -> None:
    with pytest.raises(ConfigError, match="not a date field"):
        kibana.data_view(title="x", mapping={"properties": {"t": {"type": "keyword"}}}, flavor="kibana",
                         time_field_name="t")  # fmt: skip


# -- every bundle: the import API's shape, fields from the mapping ---------------------


@pytest.mark.parametrize("flavor", FLAVORS)
def test_objects_have_what_the_import_api_requires(flavor: str) -> None:
    for name, (objects, _) in _bundles(flavor).items():
        ids = {(o["type"], o["id"]) for o in objects}
        assert len(ids) == len(objects), f"{name}: duplicate ids"
        for obj in objects:
            assert set(obj) >= {"type", "id", "attributes", "references"}, obj
            assert obj["attributes"]["title"]
            if flavor == "kibana":
                assert obj["coreMigrationVersion"] and obj["typeMigrationVersion"]
            else:
                assert obj["migrationVersion"] == {obj["type"]: obj["migrationVersion"][obj["type"]]}
            for attr in JSON_TEXT_ATTRS:
                if attr in obj["attributes"]:
                    json.loads(obj["attributes"][attr])
            meta = obj["attributes"].get("kibanaSavedObjectMeta")
            if meta:
                json.loads(meta["searchSourceJSON"])
            # A bundle is imported on its own: every reference points inside it.
            for ref in obj["references"]:
                assert (ref["type"], ref["id"]) in ids, f"{name}: dangling reference {ref}"


@pytest.mark.parametrize("flavor", FLAVORS)
def test_every_named_field_exists_in_the_mapping(flavor: str) -> None:
    for name, (objects, mapping) in _bundles(flavor).items():
        fields = kibana.mapping_fields(mapping)
        for obj in objects:
            missing = named_fields(obj) - set(fields)
            assert not missing, f"{name}/{obj['id']} names fields not in the mapping: {missing}"


@pytest.mark.parametrize("flavor", FLAVORS)
def test_jobs_and_search_log_views_have_time_fields_and_dashboards(flavor: str) -> None:
    bundles = _bundles(flavor)
    jobs, _ = bundles["jobs"]
    log, _ = bundles["log"]
    assert jobs[0]["attributes"]["timeFieldName"] == "updated_at"
    assert log[0]["attributes"]["timeFieldName"] == "timestamp"
    jobs_named = set().union(*(named_fields(o) for o in jobs))
    assert {"status", "rate_docs_per_s", "total_counts.dead_lettered"} <= jobs_named
    log_named = set().union(*(named_fields(o) for o in log))
    assert {"latency_ms.total", "mode", "rerank_fallback", "hit_count"} <= log_named
    for objects in (jobs, log):
        dashboard = objects[-1]
        assert dashboard["type"] == "dashboard"
        panels = json.loads(dashboard["attributes"]["panelsJSON"])
        assert len(panels) == len(dashboard["references"]) >= 3
        ref_names = {r["name"] for r in dashboard["references"]}
        for panel in panels:
            expected = panel["panelRefName"] if flavor != "kibana" else f"{panel['panelIndex']}:{panel['panelRefName']}"
            assert expected in ref_names
        if flavor == "kibana":
            assert any(r["type"] == "lens" for r in dashboard["references"])


def test_jobs_with_dead_letters_and_renamed_fields() -> None:
    jobs_mapping = {"properties": {"state": {"type": "keyword"}, "job_id": {"type": "keyword"},
                                   "docs_per_s": {"type": "float"}, "updated_at": {"type": "date"}}}  # fmt: skip
    objects = kibana.jobs_objects(jobs_mapping, flavor="kibana",
                                  dead_letter_mapping=dead_letter_index_body()["mappings"])  # fmt: skip
    ids = [o["id"] for o in objects]
    assert "eshybrid-lens-jobs-rate" in ids and "eshybrid-lens-jobs-by-status" not in ids
    assert "eshybrid-dv-eshybrid-dead-letters" in ids and "eshybrid-lens-dead-letters-by-reason" in ids
    for obj in objects[:1] + [o for o in objects if "dead-letters" not in o["id"]]:
        assert named_fields(obj) <= set(kibana.mapping_fields(jobs_mapping))


def test_lens_columns_are_consistent() -> None:
    objects = _bundles("kibana")["log"][0]
    for lens in (o for o in objects if o["type"] == "lens"):
        layers = lens["attributes"]["state"]["datasourceStates"]["formBased"]["layers"]
        for layer_id, layer in layers.items():
            assert layer["columnOrder"] == list(layer["columns"])
            assert {"type": "index-pattern", "id": objects[0]["id"],
                    "name": f"indexpattern-datasource-layer-{layer_id}"} in lens["references"]  # fmt: skip


# -- files ---------------------------------------------------------------------------


def test_to_ndjson_is_one_object_per_line() -> None:
    objects = _bundles("kibana")["log"][0]
    text = kibana.to_ndjson(objects)
    assert text.endswith("\n")
    assert [json.loads(line) for line in text.splitlines()] == objects


def test_shipped_ndjson_is_generated_not_hand_written() -> None:
    """docker/kibana and docker/opensearch-dashboards equal `eshybrid kibana defaults --out docker`."""
    bundles = default_bundles()
    for folder, files in bundles.items():
        shipped = sorted(p.name for p in (REPO / "docker" / folder).glob("*.ndjson"))
        assert shipped == sorted(files), f"docker/{folder}: run `eshybrid kibana defaults --out docker`"
        for name, objects in files.items():
            text = (REPO / "docker" / folder / name).read_text(encoding="utf-8")
            assert text == kibana.to_ndjson(objects), (
                f"docker/{folder}/{name} is stale: run `eshybrid kibana defaults --out docker`"
            )


def test_cli_parses_export() -> None:
    args = build_parser().parse_args(["kibana", "export", "--index", "a", "--index", "b", "--flavor", "kibana"])
    assert args.index == ["a", "b"] and args.flavor == "kibana" and args.dashboards
    assert callable(args.func)
