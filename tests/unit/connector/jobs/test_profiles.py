"""Shopper profiles: event validation, the decayed weighted mean, incremental folding (pure)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from connector.jobs.profiles import (
    BadEvent,
    Event,
    ProfileState,
    fold_events,
    parse_event,
    parse_timestamp,
    profile_doc,
    read_events,
    state_from_doc,
)
from mappings.system import PROFILE_FIELDS

DAY = 86_400.0


def test_timestamps() -> None:
    assert parse_timestamp("2026-01-01T00:00:00Z") == 1767225600.0
    assert parse_timestamp("2026-01-01T00:00:00") == 1767225600.0  # no zone: UTC
    assert parse_timestamp("2026-01-01T01:00:00+01:00") == 1767225600.0
    assert parse_timestamp(1767225600) == 1767225600.0
    assert parse_timestamp(1767225600000) == 1767225600.0  # milliseconds
    for bad in ("yesterday", "", True, None, -5, float("nan"), [1]):
        with pytest.raises(ValueError):
            parse_timestamp(bad)


def test_events_are_validated_with_reasons() -> None:
    good = parse_event({"user_id": "u", "product_id": 7, "kind": "cart", "timestamp": 10}, line=1)
    assert good == Event("u", "7", "cart", 10.0)
    cases = {
        "bad_type": [["a"], {"user_id": ["u"], "product_id": "p", "kind": "view", "timestamp": 1}],
        "missing_field": [{"user_id": "u", "kind": "view", "timestamp": 1}, {"user_id": "", "product_id": "p"}],
        "unknown_kind": [{"user_id": "u", "product_id": "p", "kind": "wishlist", "timestamp": 1}],
        "bad_timestamp": [{"user_id": "u", "product_id": "p", "kind": "view", "timestamp": "soon"}],
    }
    for code, raws in cases.items():
        for raw in raws:
            bad = parse_event(raw, line=3)
            assert isinstance(bad, BadEvent) and bad.reason_code == code and bad.line == 3, (raw, bad)


def test_read_events_keeps_going_past_bad_json(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    path.write_text('{"user_id": "u"}\nnot json\n\n[1]\n')
    rows = list(read_events(path))
    assert [line for line, _ in rows] == [1, 2, 4]
    assert isinstance(rows[1][1], BadEvent) and rows[1][1].reason_code == "bad_json"


def _event(product: str, kind: str, at: float) -> Event:
    return Event("u", product, kind, at)


def test_weighted_decayed_mean_and_concentration() -> None:
    a, b = [1.0, 0.0], [0.0, 1.0]
    state = fold_events(None, [(_event("a", "purchase", 30 * DAY), a), (_event("b", "view", 0.0), b)])
    # purchase weight 5 at age 0; view weight 1 at age 30 days = one half-life -> 0.5
    assert state.weight_sum == pytest.approx(5.5)
    assert state.vector == pytest.approx([5 / 5.5, 0.5 / 5.5])
    assert state.as_of == 30 * DAY and state.event_count == 2
    assert state.concentration == pytest.approx(math.hypot(5, 0.5) / 5.5)
    same = fold_events(None, [(_event("a", "view", 0), a), (_event("a", "view", 0), a)])
    assert same.concentration == pytest.approx(1.0)
    no_decay = fold_events(None, [(_event("a", "view", 0), a), (_event("b", "view", 1e9), b)], half_life_days=0)
    assert no_decay.vector == pytest.approx([0.5, 0.5])


def test_incremental_update_equals_one_build() -> None:
    rows = [
        (_event("a", "view", 0.0), [1.0, 0.0, 0.0]),
        (_event("b", "cart", 3 * DAY), [0.0, 1.0, 0.0]),
        (_event("c", "purchase", 40 * DAY), [0.0, 0.6, 0.8]),
        (_event("d", "view", 10 * DAY), [0.6, 0.0, 0.8]),  # a late-arriving older event
    ]
    once = fold_events(None, rows)
    first = fold_events(None, rows[:2])
    stored = state_from_doc(profile_doc("u", first, model_id="m", index="i", vector_field="v", updated_at=0))
    twice = fold_events(stored, rows[2:])
    assert twice.vector == pytest.approx(once.vector, abs=1e-6)
    assert twice.weight_sum == pytest.approx(once.weight_sum)
    assert (twice.as_of, twice.event_count) == (once.as_of, 4)


def test_profile_document_and_history() -> None:
    state = fold_events(None, [(_event("a", "view", 0.0), [1.0, 0.0])], keep_history=True)
    doc = profile_doc("u", state, model_id="m", index="products", vector_field="embedding", updated_at=DAY)
    assert set(doc) <= set(PROFILE_FIELDS)
    assert doc["history"] == [{"product_id": "a", "kind": "view", "timestamp": "1970-01-01T00:00:00Z"}]
    assert doc["updated_at"] == "1970-01-02T00:00:00Z" and doc["concentration"] == 1.0
    plain = profile_doc("u", fold_events(None, [(_event("a", "view", 0.0), [1.0, 0.0])]), model_id="m",
                        index="products", vector_field="embedding", updated_at=DAY)  # fmt: skip
    assert "history" not in plain
    json.dumps(doc)


def test_fold_refuses_nothing_and_mixed_dims() -> None:
    with pytest.raises(ValueError):
        fold_events(None, [])
    stored = ProfileState(vector=[1.0, 0.0], weight_sum=1.0, as_of=0.0, event_count=1)
    with pytest.raises(ValueError):
        fold_events(stored, [(_event("a", "view", 0.0), [1.0, 0.0, 0.0])])
