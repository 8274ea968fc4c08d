"""The personal signal (pure): adaptive weight, exact scores over the candidates only, profile reads."""

from __future__ import annotations

import pytest

from connector.errors import ModelMismatchError, SearchRequestError
from connector.search.fusion import LegHit
from connector.search.personal import (
    CONCENTRATION_FLOOR,
    MIN_EVENTS,
    UserProfile,
    effective_weight,
    personal_hits,
    profile_search_body,
    user_profile_of,
    vectors_of,
    with_vectors,
)


def profile(vector: tuple[float, ...], events: int = 5) -> UserProfile:
    return UserProfile("u", vector, event_count=events, model_id="m")


def test_weight_cold_start_and_concentration_ramp() -> None:
    assert effective_weight(None, 0.3) == 0.0
    assert effective_weight(profile((1.0, 0.0), events=MIN_EVENTS - 1), 0.3) == 0.0
    assert effective_weight(profile((1.0, 0.0)), 0.3) == pytest.approx(0.3)
    assert effective_weight(profile((CONCENTRATION_FLOOR, 0.0)), 0.3) == 0.0
    half = CONCENTRATION_FLOOR + (1 - CONCENTRATION_FLOOR) / 2
    assert effective_weight(profile((half, 0.0)), 0.4) == pytest.approx(0.2)
    assert effective_weight(profile((0.0, 0.0)), 0.3) == 0.0
    for bad in (-0.1, float("nan"), 1e6, "0.3", True):
        with pytest.raises(SearchRequestError) as err:
            effective_weight(profile((1.0, 0.0)), bad)  # type: ignore[arg-type]
        assert err.value.field == "personal_weight"  # type: ignore[attr-defined]


def test_personal_hits_score_only_the_candidates() -> None:
    candidates = [LegHit("a", 3.0, "idx"), LegHit("b", 2.0, "idx"), LegHit("a", 0.9, "idx"), LegHit("c", 1.0, "idx")]
    vectors = {"a": [1.0, 0.0], "b": [0.6, 0.8], "z": [1.0, 0.0]}  # z: not a candidate; c: no vector
    hits = personal_hits(candidates, vectors, profile((0.5, 0.0)))
    assert [(h.id, h.score) for h in hits] == [("a", 1.0), ("b", 0.6)]
    assert personal_hits(candidates, vectors, profile((0.0, 0.0))) == []
    with pytest.raises(SearchRequestError):
        personal_hits(candidates, {"a": [1.0, 0.0, 0.0]}, profile((1.0, 0.0)))


def test_vectors_come_back_with_the_legs() -> None:
    body = with_vectors({"query": {"match_all": {}}, "_source": False, "size": 5}, "emb.v")
    assert body["_source"] == {"includes": ["emb.v"]} and body["size"] == 5
    response = {"hits": {"hits": [{"_id": "a", "_source": {"emb": {"v": [0.1, 0.2]}}}, {"_id": "b", "_source": {}}]}}
    assert vectors_of(response, "emb.v") == {"a": [0.1, 0.2]}


def test_profile_read_by_id_and_model_check() -> None:
    assert profile_search_body("u1") == {"query": {"ids": {"values": ["u1"]}}, "size": 1, "track_total_hits": False}
    for bad in ("", "  ", 7, "x" * 513):
        with pytest.raises(SearchRequestError):
            profile_search_body(bad)  # type: ignore[arg-type]
    found = {"hits": {"hits": [{"_id": "u1", "_source": {"vector": [0.6, 0.8], "event_count": 4, "model_id": "m"}}]}}
    user = user_profile_of(found, "u1")
    assert user == UserProfile("u1", (0.6, 0.8), event_count=4, model_id="m")
    assert user.concentration == pytest.approx(1.0)
    assert user_profile_of({"hits": {"hits": []}}, "u1") is None
    assert user_profile_of({}, "u1") is None  # no profiles index yet (ignore_unavailable)
    with pytest.raises(SearchRequestError):
        user_profile_of({"hits": {"hits": [{"_id": "u1", "_source": {"vector": "x"}}]}}, "u1")
    user.check_model("m")
    user.check_model(None)
    with pytest.raises(ModelMismatchError):
        user.check_model("other")
