"""POST /events without a server: limits, per-record validation, rate limits, backpressure."""

from __future__ import annotations

import json
from typing import Any

import pytest

from connector.ubi.intake import EventIntake, EventIntakeSettings, TokenBuckets
from connector.ubi.records import UbiEvent


class ListSink:
    """Takes at most ``room`` records, like a logger whose queue has that much room."""

    def __init__(self, room: int = 10_000) -> None:
        self.room = room
        self.records: list[UbiEvent] = []

    def offer(self, records: list[UbiEvent]) -> int:
        taken = records[: max(0, self.room - len(self.records))]
        self.records.extend(taken)
        return len(taken)


def _event(client: str = "c1", **extra: Any) -> dict[str, Any]:
    return {"action_name": "click", "client_id": client, "query_id": "q1",
            "event_attributes": {"object": {"object_id": "d1"}, "position": {"ordinal": 1}}, **extra}  # fmt: skip


def _body(value: Any) -> bytes:
    return json.dumps(value).encode()


def test_one_many_or_wrapped() -> None:
    intake = EventIntake(ListSink())
    assert intake.handle(_body(_event()), address="a").status == 202
    answer = intake.handle(_body([_event(), _event()]), address="a")
    assert (answer.status, answer.body["accepted"]) == (202, 2)
    assert intake.handle(_body({"events": [_event()]}), address="a").body["accepted"] == 1
    assert intake.counts.accepted == 4


def test_a_bad_record_never_fails_the_good_ones() -> None:
    sink = ListSink()
    intake = EventIntake(sink)
    answer = intake.handle(_body([_event(), _event(index="products"), {"action_name": "click"}, _event()]), address="a")
    assert answer.status == 202 and answer.body["accepted"] == 2 and len(sink.records) == 2
    assert [(r["record"], r["status"], r["field"]) for r in answer.body["rejected"]] == [
        (1, 400, "index"),
        (2, 400, "client_id"),
    ]


def test_all_bad_is_400_naming_the_field() -> None:
    answer = EventIntake(ListSink()).handle(
        _body([_event(event_attributes={"position": {"ordinal": -1}})]), address="a"
    )
    assert answer.status == 400
    assert answer.body["error"]["field"] == "event_attributes.position.ordinal"


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        (b"{nope", 400, "body"),
        (b"x" * 5000, 413, "body"),
        (_body([_event()] * 11), 413, "events"),
        (b"[]", 400, "events"),
    ],
)
def test_bodies_refused_whole(body: bytes, status: int, field: str) -> None:
    intake = EventIntake(ListSink(), EventIntakeSettings(max_body_bytes=4096, max_records=10))
    answer = intake.handle(body, address="a")
    assert (answer.status, answer.body["error"]["field"]) == (status, field)


def test_a_full_queue_answers_429_and_counts() -> None:
    intake = EventIntake(ListSink(room=3))
    answer = intake.handle(_body([_event()] * 5), address="a")
    assert answer.status == 202 and answer.body["accepted"] == 3
    assert [r["status"] for r in answer.body["rejected"]] == [429, 429]
    answer = intake.handle(_body([_event()]), address="a")
    assert answer.status == 429 and answer.body["error"]["type"] == "overloaded"
    assert intake.counts.overloaded == 3


def test_rate_limits_per_client_and_per_address() -> None:
    intake = EventIntake(ListSink(), EventIntakeSettings(rate_per_s=0.001, burst=3))
    statuses = [intake.handle(_body(_event("c1")), address=f"10.0.0.{i}").status for i in range(5)]
    assert statuses == [202, 202, 202, 429, 429]  # one client, many addresses
    answer = intake.handle(_body([_event("c2"), _event("c3"), _event("c4"), _event("c5")]), address="b")
    assert answer.body["accepted"] == 3 and answer.body["rejected"][0]["field"] == "address"
    assert intake.counts.rate_limited == 3


def test_token_buckets_refill_and_forget() -> None:
    buckets = TokenBuckets(rate_per_s=10.0, burst=5, max_keys=2)
    assert buckets.take("a", 7, now=0.0) == 5
    assert buckets.take("a", 5, now=0.2) == 2
    buckets.take("b", now=0.2)
    buckets.take("c", now=0.2)  # "a" is forgotten: a fresh bucket
    assert buckets.take("a", 5, now=0.2) == 5
