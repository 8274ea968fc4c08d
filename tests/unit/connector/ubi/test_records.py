"""UBI records: the documented fields only, errors naming the field, JSON lines both ways."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from connector.errors import RecordValidationError
from connector.ubi import (
    UbiEvent,
    UbiQuery,
    parse_event,
    parse_query,
    read_events_jsonl,
    read_queries_jsonl,
    write_jsonl,
)

CLICK = {
    "action_name": "click",
    "query_id": "q-1",
    "client_id": "c-1",
    "session_id": "s-1",
    "timestamp": "2026-12-06T10:00:00.250Z",
    "event_attributes": {"object": {"object_id": "B001"}, "position": {"ordinal": 3}},
}
QUERY = {
    "query_id": "q-1",
    "client_id": "c-1",
    "user_query": "red tent",
    "timestamp": 1796551200000,
    "query_response_hit_ids": ["B001", "B002", "B003"],
    "application": "shop",
    "query_attributes": {"experiment": "fusion-1", "arm": "interleaved", "hit_arms": ["a", "b", "a"]},
}


def test_an_event_keeps_the_ubi_field_names() -> None:
    event = parse_event(CLICK)
    assert (event.object_id, event.ordinal) == ("B001", 3)
    assert event.to_doc() == {**CLICK, "timestamp": "2026-12-06T10:00:00.250+00:00"}


def test_a_query_record_and_its_arms() -> None:
    doc = parse_query(QUERY).to_doc()
    assert doc["query_response_hit_ids"] == ["B001", "B002", "B003"]
    assert doc["query_attributes"]["hit_arms"] == ["a", "b", "a"]
    assert doc["timestamp"].endswith("+00:00")


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"client_id": None}, "client_id"),
        ({"index": "products"}, "index"),  # no record chooses an index
        ({"event_attributes": {"position": {"ordinal": "third"}}}, "event_attributes.position.ordinal"),
        ({"event_attributes": {"position": {"ordinal": 0}}}, "event_attributes.position.ordinal"),
        ({"event_attributes": {"object": {"object_id": "x", "mapping": {}}}}, "event_attributes.object.mapping"),
        ({"action_name": "drop table"}, "action_name"),
        ({"client_id": "x" * 101}, "client_id"),
        ({"timestamp": "yesterday"}, "timestamp"),
    ],
)
def test_errors_name_the_field(change: dict[str, object], field: str) -> None:
    record = {**CLICK, **change}
    record = {k: v for k, v in record.items() if v is not None}
    with pytest.raises(RecordValidationError) as info:
        parse_event(record, record=4)
    assert info.value.field == field
    assert info.value.record == 4
    assert field in str(info.value) and isinstance(info.value, ValueError)


def test_hit_arms_must_match_the_hits() -> None:
    bad = {**QUERY, "query_attributes": {"hit_arms": ["a"]}}
    with pytest.raises(RecordValidationError) as info:
        parse_query(bad)
    assert info.value.field == "query_attributes.hit_arms"


def test_not_an_object() -> None:
    with pytest.raises(RecordValidationError) as info:
        parse_event(["click"])
    assert info.value.field == "record"


def test_json_lines_round_trip(tmp_path: Path) -> None:
    queries = [parse_query(QUERY), UbiQuery(query_id="q-2", user_query="tent pegs", query_response_hit_ids=["B9"])]
    events = [parse_event(CLICK), UbiEvent(action_name="purchase", client_id="c-1", query_id="q-2")]
    assert write_jsonl(tmp_path / "q.jsonl", queries) == 2
    assert write_jsonl(tmp_path / "e.jsonl", events) == 2
    assert list(read_queries_jsonl(tmp_path / "q.jsonl")) == queries
    assert list(read_events_jsonl(tmp_path / "e.jsonl")) == events
    first = json.loads((tmp_path / "e.jsonl").read_text().splitlines()[0])
    assert first["event_attributes"]["object"]["object_id"] == "B001"


def test_a_bad_line_names_file_line_and_field(tmp_path: Path) -> None:
    path = tmp_path / "e.jsonl"
    path.write_text(json.dumps(CLICK) + "\n\n" + json.dumps({**CLICK, "user_id": "u"}) + "\n")
    with pytest.raises(RecordValidationError) as info:
        list(read_events_jsonl(path))
    assert (info.value.line, info.value.field) == (3, "user_id")
    assert f"{path}:3" in str(info.value)
    path.write_text("{not json\n")
    with pytest.raises(RecordValidationError) as info:
        list(read_events_jsonl(path))
    assert info.value.line == 1


def test_query_record_from_a_response() -> None:
    from types import SimpleNamespace

    from connector.search.models import DEFAULT_FUSION
    from connector.ubi import query_record_from_response

    response = SimpleNamespace(
        query_id="9f1c", query="red tent", ids=["B1", "B2"], index="products", mode="hybrid", fusion=DEFAULT_FUSION
    )
    record = query_record_from_response(
        response, client_id="c-1", attributes={"experiment": "e", "arm": "interleaved", "hit_arms": ["a", "b"]}
    )
    doc = record.to_doc()
    assert (doc["query_id"], doc["user_query"], doc["query_response_hit_ids"]) == ("9f1c", "red tent", ["B1", "B2"])
    assert doc["query_attributes"]["configuration"] == f"hybrid {DEFAULT_FUSION.describe()}"
    assert doc["query_attributes"]["index"] == "products" and doc["query_attributes"]["hit_arms"] == ["a", "b"]
    bare = query_record_from_response(SimpleNamespace(query="q", hits=[], mode="bm25", fusion=None))
    assert len(bare.query_id) == 32 and bare.query_attributes is not None
    assert bare.query_attributes.configuration == "bm25"
