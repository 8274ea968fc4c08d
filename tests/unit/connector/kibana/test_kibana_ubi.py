"""The shoppers dashboard over the UBI indexes: panels by field, both apps, references that resolve."""

from __future__ import annotations

import copy
import json

import pytest

from connector.kibana import ubi_objects
from mappings.system import ubi_events_index_body, ubi_queries_index_body


def _objects(flavor: str, events: dict | None = None) -> list[dict]:
    return ubi_objects(
        ubi_queries_index_body()["mappings"],
        events or ubi_events_index_body()["mappings"],
        flavor=flavor,  # type: ignore[arg-type]
    )


@pytest.mark.parametrize(("flavor", "chart"), [("kibana", "lens"), ("opensearch-dashboards", "visualization")])
def test_panels_and_references(flavor: str, chart: str) -> None:
    objects = _objects(flavor)
    ids = {o["id"] for o in objects}
    assert [o["type"] for o in objects].count(chart) == 4
    board = objects[-1]
    assert board["id"] == "eshybrid-dashboard-shoppers"
    assert {r["id"] for r in board["references"]} <= ids
    for obj in objects:
        for ref in obj.get("references", []):
            assert ref["id"] in ids
    zero = next(o for o in objects if o["type"] == "search")
    source = json.loads(zero["attributes"]["kibanaSavedObjectMeta"]["searchSourceJSON"])
    assert source["query"]["query"] == "NOT query_response_hit_ids : *"
    assert "user_query" in zero["attributes"]["columns"]


def test_a_missing_field_leaves_its_panels_out() -> None:
    events = copy.deepcopy(ubi_events_index_body()["mappings"])
    del events["properties"]["event_attributes"]
    kinds = [o["id"] for o in _objects("kibana", events)]
    assert not any("by-position" in k for k in kinds)
    assert "eshybrid-lens-ubi-zero-results" in kinds
