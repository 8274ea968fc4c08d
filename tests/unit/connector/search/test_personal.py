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
    personal_body,
    personal_leg,
    profile_search_body,
    user_profile_of,
)
from tests.unit._golden import GoldenFiles

GOLDEN = GoldenFiles(prefix="personal_")


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


def test_personal_body_is_the_profile_knn_over_exactly_the_candidates() -> None:
    user = profile((0.0, 0.6, 0.8), events=4)
    bodies = {
        shape: personal_body(user, ["b", "a", "b", "c"], knn_shape=shape, field="embedding")
        for shape in ("es_knn_section", "es_knn_query", "os_knn_query")
    }
    GOLDEN.check("bodies", bodies)
    section = bodies["es_knn_section"]["knn"]
    assert section["query_vector"] == pytest.approx([0.0, 0.6, 0.8])  # unit direction
    assert section["filter"] == [{"ids": {"values": ["b", "a", "c"]}}] and section["k"] == 3
    assert bodies["os_knn_query"]["size"] == 3 and bodies["es_knn_section"]["_source"] is False
    with pytest.raises(SearchRequestError):
        personal_body(profile((0.0, 0.0)), ["a"], knn_shape="es_knn_section", field="embedding")


def test_personal_leg_never_adds_a_document() -> None:
    hits = [LegHit("a", 0.9, "idx"), LegHit("z", 0.8, "idx"), LegHit("b", 0.7, "idx")]
    assert [h.id for h in personal_leg(hits, ["a", "b", "c"])] == ["a", "b"]


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
