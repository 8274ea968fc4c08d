"""Affinity profiles (pure): the default fields, the decayed sums, incremental folds, UBI events as profile events."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from connector.errors import ConfigError
from connector.jobs.affinities import (
    MAX_VALUES_PER_FIELD,
    check_affinity_fields,
    field_stats_body,
    field_type,
    fold_affinity_sums,
    keyword_fields_of,
    pick_affinity_fields,
    profile_events_from_ubi,
    values_body,
    values_of_hit,
)
from connector.jobs.profiles import Event, fold_events, profile_doc, state_from_doc
from connector.ubi.records import parse_event
from tests.unit._golden import GoldenFiles

GOLDEN = GoldenFiles(prefix="jobs/affinities_")
DAY = 86_400.0

PROPERTIES = {
    "title": {"type": "text", "fields": {"keyword": {"type": "keyword", "ignore_above": 256}}},
    "brand": {"type": "text", "fields": {"keyword": {"type": "keyword"}}},
    "sku": {"type": "keyword"},
    "price_band": {"type": "keyword"},
    "rare": {"type": "keyword"},
    "meta": {"properties": {"colour": {"type": "keyword"}}},
    "embedding": {"type": "dense_vector", "dims": 2},
    "eshybrid_meta": {"properties": {"embedding": {"properties": {"model_id": {"type": "keyword"}}}}},
}


def test_default_fields_are_keyword_fields_with_a_moderate_number_of_values() -> None:
    fields = keyword_fields_of(PROPERTIES)
    assert fields == ["title.keyword", "brand.keyword", "sku", "price_band", "rare", "meta.colour"]
    GOLDEN.check("field_stats", field_stats_body(fields))
    stats = {  # per field: distinct values, documents having one (of 1000)
        "title.keyword": (990, 1000),  # nearly one value per document: no taste
        "brand.keyword": (400, 990),
        "sku": (1000, 1000),
        "price_band": (6, 300),
        "rare": (3, 20),  # on 2% of the documents
        "meta.colour": (1, 800),  # one value: says nothing
    }
    aggs = {}
    for n, name in enumerate(fields):
        aggs[f"d{n}"] = {"value": stats[name][0]}
        aggs[f"c{n}"] = {"doc_count": stats[name][1]}
    response = {"hits": {"total": {"value": 1000}}, "aggregations": aggs}
    assert pick_affinity_fields(fields, response) == ["brand.keyword", "price_band"]
    assert pick_affinity_fields(fields, {"hits": {"total": {"value": 0}}}) == []


def test_values_are_read_as_doc_values() -> None:
    assert values_body(["a", "b", "a"], ["brand.keyword"]) == {
        "query": {"ids": {"values": ["a", "b"]}},
        "size": 2,
        "_source": False,
        "docvalue_fields": ["brand.keyword"],
        "track_total_hits": False,
    }
    hit = {"_id": "a", "fields": {"brand.keyword": ["Acme", " "], "category": ["x" * 300], "other": ["y"]}}
    assert values_of_hit(hit, ["brand.keyword", "category", "missing"]) == {"brand.keyword": ["Acme"]}


def test_sums_decay_fold_and_keep_the_strongest_values() -> None:
    first = fold_affinity_sums(None, 1.0, [(5.0, {"brand": ["A"]}), (1.0, {"brand": ["B", "B"], "cat": ["x"]})])
    assert first == {"brand": {"A": 5.0, "B": 1.0}, "cat": {"x": 1.0}}
    later = fold_affinity_sums(first, 0.5, [(1.0, {"brand": ["B"]})])
    assert later == {"brand": {"A": 2.5, "B": 1.5}, "cat": {"x": 0.5}}
    many = fold_affinity_sums(None, 1.0, [(float(i), {"v": [f"x{i:03d}"]}) for i in range(1, 100)])
    assert len(many["v"]) == MAX_VALUES_PER_FIELD and "x099" in many["v"] and "x001" not in many["v"]


def test_fold_events_builds_affinities_incrementally_beside_the_vector() -> None:
    values = {"p1": {"brand": ["A"], "cat": ["x"]}, "p2": {"brand": ["B"]}, "p3": {"brand": ["A"]}}
    fields = ("brand",)
    e1, e2 = Event("u", "p1", "purchase", 0.0), Event("u", "p2", "view", 30 * DAY)
    once = fold_events(None, [(e1, [1.0, 0.0]), (e2, [0.0, 1.0])], values=values, affinity_fields=fields)
    assert once.affinities == {"brand": pytest.approx({"A": 2.5, "B": 1.0})}  # a month old: half
    assert once.weight_sum == pytest.approx(3.5) and once.affinity_fields == fields
    e3 = Event("u", "p3", "view", 60 * DAY)
    doc = profile_doc("u", once, model_id="m", index="i", vector_field="embedding", updated_at=60 * DAY)
    assert doc["affinity_fields"] == ["brand"] and doc["affinities"] == {"brand": {"A": 2.5, "B": 1.0}}
    stepwise = fold_events(state_from_doc(doc), [(e3, [1.0, 0.0])], values=values, affinity_fields=fields)
    at_once = fold_events(
        None, [(e1, [1.0, 0.0]), (e2, [0.0, 1.0]), (e3, [1.0, 0.0])], values=values, affinity_fields=fields
    )
    assert stepwise.affinities["brand"] == pytest.approx(at_once.affinities["brand"])
    assert stepwise.weight_sum == pytest.approx(at_once.weight_sum)
    # fields dropped from the list lose their sums; no fields: no affinities
    assert fold_events(state_from_doc(doc), [(e3, [1.0, 0.0])], values=values, affinity_fields=()).affinities == {}


def test_ubi_events_become_profile_events() -> None:
    at = datetime(2026, 11, 1, 12, tzinfo=UTC).isoformat()

    def ubi(action: str, obj: str | None) -> object:
        attrs = {"object": {"object_id": obj}} if obj else None
        return parse_event({"action_name": action, "client_id": "c1", "timestamp": at, "event_attributes": attrs})

    records = [ubi("impression", "p1"), ubi("click", "p1"), ubi("add_to_cart", "p2"), ubi("purchase", "p2")]
    records += [ubi("click", None), ubi("hover", "p3")]
    events = list(profile_events_from_ubi(records))  # type: ignore[arg-type]
    assert [(n, e["user_id"], e["product_id"], e["kind"]) for n, e in events] == [
        (2, "c1", "p1", "view"),
        (3, "c1", "p2", "cart"),
        (4, "c1", "p2", "purchase"),
    ]
    assert events[0][1]["timestamp"].startswith("2026-11-01T12:00:00")


def test_affinity_fields_must_have_doc_values() -> None:
    assert field_type(PROPERTIES, "brand") == "text" and field_type(PROPERTIES, "brand.keyword") == "keyword"
    assert field_type(PROPERTIES, "meta.colour") == "keyword" and field_type(PROPERTIES, "nope") is None
    check_affinity_fields(PROPERTIES, ["brand.keyword", "meta.colour", "price_band"])
    with pytest.raises(ConfigError, match=r"use brand\.keyword") as err:
        check_affinity_fields(PROPERTIES, ["brand"])
    assert err.value.field == "affinity_fields"  # type: ignore[attr-defined]
    with pytest.raises(ConfigError, match="unmapped"):
        check_affinity_fields(PROPERTIES, ["brand.keyword", "nope"])
