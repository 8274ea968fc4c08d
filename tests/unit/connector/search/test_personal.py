"""The personal signal (pure): affinities shrunk and boosted by the session, scores over the candidates only,
its fusion weight, profile and session reads."""

from __future__ import annotations

import pytest

from connector.errors import ModelMismatchError, SearchRequestError
from connector.search.fusion import LegHit, linear_fuse
from connector.search.personal import (
    DEFAULT_SHRINKAGE,
    MIN_EVENTS,
    SESSION_BOOST,
    PersonalSignal,
    UserProfile,
    candidate_values,
    effective_weight,
    profile_search_body,
    session_events_body,
    session_events_of,
    user_profile_of,
)
from tests.unit._golden import GoldenFiles

GOLDEN = GoldenFiles(prefix="personal_")

# a purchase (5) and three views (1) of brand Acme, two of them shoes
SUMS = {"brand": {"Acme": 8.0}, "category": {"shoes": 6.0, "bags": 2.0}}


def profile(events: int = 4, session: tuple[tuple[str, float], ...] = ()) -> UserProfile:
    return UserProfile(
        "u",
        (0.6, 0.8),
        event_count=events,
        model_id="m",
        weight_sum=8.0,
        affinities=SUMS,
        affinity_fields=("brand", "category"),
        session=session,
    )


def test_weight_is_zero_for_a_cold_start_only() -> None:
    assert effective_weight(None, 0.3) == 0.0
    assert effective_weight(profile(events=MIN_EVENTS - 1), 0.3) == 0.0
    assert effective_weight(profile(events=MIN_EVENTS - 1, session=(("p", 1.0),)), 0.3) == pytest.approx(0.3)
    assert effective_weight(profile(), 0.3) == pytest.approx(0.3)
    vector_only = UserProfile("u", (1.0, 0.0), event_count=9, model_id="m")  # built before affinities existed
    assert effective_weight(vector_only, 0.3) == 0.0
    for bad in (-0.1, float("nan"), 1e6, "0.3", True):
        with pytest.raises(SearchRequestError) as err:
            effective_weight(profile(), bad)  # type: ignore[arg-type]
        assert err.value.field == "personal_weight"  # type: ignore[attr-defined]


def test_affinities_are_shares_of_the_history_shrunk_toward_zero() -> None:
    signal = PersonalSignal.of(profile(), 0.3)
    denominator = 8.0 + DEFAULT_SHRINKAGE
    assert signal.affinities["brand"]["Acme"] == pytest.approx(8.0 / denominator)
    assert signal.affinities["category"] == pytest.approx({"shoes": 6.0 / denominator, "bags": 2.0 / denominator})
    shoe = {"brand": ["Acme"], "category": ["shoes"], "colour": ["red"]}
    assert signal.matches(shoe) == pytest.approx({"brand=Acme": 8 / 13, "category=shoes": 6 / 13})
    assert signal.taste(shoe) == pytest.approx(14 / 13)
    assert signal.taste({"brand": ["Other"], "category": ["bags", "shoes"]}) == pytest.approx(6 / 13)  # best value
    assert signal.taste({}) == 0.0
    numeric = PersonalSignal.of(
        UserProfile("u", (), 4, weight_sum=8.0, affinities={"size": {"42": 8.0}}, affinity_fields=("size",)), 0.3
    )
    assert numeric.taste({"size": [42]}) == pytest.approx(8 / 13)  # a number's doc value, stored as its text
    assert numeric.matches({"size": [42, 43]}) == pytest.approx({"size=42": 8 / 13})
    # a longer history with the same shares weighs more (less shrunk)
    longer = PersonalSignal.of(profile(), 0.3, shrinkage=0.0)
    assert longer.affinities["brand"]["Acme"] == pytest.approx(1.0)


def test_the_session_counts_more_than_old_history() -> None:
    recent = profile(session=(("p9", 3.0), ("p9", 1.0), ("unknown", 1.0)))
    signal = PersonalSignal.of(recent, 0.3, session_values={"p9": {"brand": ["Zed"], "colour": ["red"]}})
    denominator = 8.0 + SESSION_BOOST * 5.0 + DEFAULT_SHRINKAGE
    assert signal.affinities["brand"] == pytest.approx(
        {"Acme": 8 / denominator, "Zed": SESSION_BOOST * 4 / denominator}
    )
    assert "colour" not in signal.affinities  # not an affinity field of the profile
    assert SESSION_BOOST > 1


def test_the_leg_scores_exactly_the_candidates_and_weighs_by_the_strongest_taste() -> None:
    signal = PersonalSignal.of(profile(), 0.5)
    lexical = [LegHit("a", 3.0, "idx"), LegHit("b", 2.0, "idx")]
    vector = [LegHit("b", 0.9, "idx"), LegHit("c", 0.8, "idx")]
    values = {"a": {"brand": ["Acme"]}, "b": {"brand": ["Other"]}, "z": {"brand": ["Acme"]}}
    linear = signal.leg([*lexical, *vector], values, rrf=False)
    assert [(h.id, round(h.score, 4)) for h in linear] == [("a", round(8 / 13, 4)), ("b", 0.0), ("c", 0.0)]
    assert [h.id for h in signal.leg([*lexical, *vector], values, rrf=True)] == ["a"]
    weight = signal.fusion_weight(linear, rrf=False)
    assert weight == pytest.approx(0.5 * 8 / 13) and signal.fusion_weight(linear, rrf=True) == 0.5
    # after min-max, the candidate gains exactly weight * taste
    fused = linear_fuse(
        {"lexical": lexical, "personal": linear}, weights={"lexical": 1.0, "personal": weight}, normalizer="min_max"
    )
    by_id = {d.id: d for d in fused}
    assert by_id["a"].legs["personal"].contribution == pytest.approx(0.5 * 8 / 13)
    assert "personal" in by_id["b"].legs and by_id["b"].legs["personal"].contribution == 0.0


def test_candidate_values_come_from_the_hits_fields() -> None:
    responses = [
        {"hits": {"hits": [{"_id": "a", "fields": {"brand": ["Acme"], "category": [""]}}, {"_id": "b"}]}},
        {"hits": {"hits": [{"_id": "a", "fields": {"brand": ["Other"]}}, {"_id": "c", "fields": {"category": ["x"]}}]}},
    ]
    values = candidate_values(responses)
    assert values == {"a": {"brand": ["Acme"], "category": [""]}, "c": {"category": ["x"]}}
    signal = PersonalSignal.of(profile(), 0.3)
    assert signal.taste(values["a"]) == pytest.approx(8 / 13) and signal.matches(values["c"]) == {}


def test_profile_and_session_reads() -> None:
    assert profile_search_body("u1") == {
        "query": {"ids": {"values": ["u1"]}},
        "size": 1,
        "_source": {"excludes": ["vector", "history"]},
        "track_total_hits": False,
    }
    for bad in ("", "  ", 7, "x" * 513):
        with pytest.raises(SearchRequestError):
            profile_search_body(bad)  # type: ignore[arg-type]
    source = {
        "vector": [0.6, 0.8],
        "event_count": 4,
        "model_id": "m",
        "weight_sum": 8.0,
        "affinity_fields": ["brand", "category"],
        "affinities": SUMS,
    }
    user = user_profile_of({"hits": {"hits": [{"_id": "u", "_source": source}]}}, "u")
    assert user == profile()
    assert user.concentration == pytest.approx(1.0)
    del source["vector"]  # as the search reads it: the vector is not fetched
    assert user_profile_of({"hits": {"hits": [{"_id": "u", "_source": source}]}}, "u") == UserProfile(
        "u", (), 4, "m", 8.0, SUMS, ("brand", "category")
    )
    assert user_profile_of({"hits": {"hits": []}}, "u1") is None
    assert user_profile_of({}, "u1") is None  # no profiles index yet (ignore_unavailable)
    with pytest.raises(SearchRequestError):
        user_profile_of({"hits": {"hits": [{"_id": "u1", "_source": {"vector": "x"}}]}}, "u1")
    user.check_model("m")
    user.check_model(None)
    with pytest.raises(ModelMismatchError):
        user.check_model("other")
    GOLDEN.check("session_events", session_events_body("u", "s-1"))
    with pytest.raises(SearchRequestError) as err:
        session_events_body("u", "x" * 101)
    assert err.value.field == "session_id"  # type: ignore[attr-defined]
    hits = [
        {"_source": {"action_name": "add_to_cart", "event_attributes": {"object": {"object_id": "p1"}}}},
        {"_source": {"action_name": "impression", "event_attributes": {"object": {"object_id": "p2"}}}},
        {"_source": {"action_name": "click"}},
        {"_source": {"action_name": "click", "event_attributes": {"object": {"object_id": "p3"}}}},
    ]
    assert session_events_of({"hits": {"hits": hits}}) == (("p1", 3.0), ("p3", 1.0))
