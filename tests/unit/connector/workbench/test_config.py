"""A side's URL form: parsing, the round trip, presets and what errors say."""

from __future__ import annotations

import pytest

from connector.errors import SearchRequestError
from connector.search.models import DEFAULT_FUSION, FusionConfig
from connector.workbench.config import SideConfig, parse_side, presets, side_to_url


def test_a_side_round_trips_through_its_url() -> None:
    side = parse_side(
        "mode:hybrid,fusion:linear,lw:0.6,vw:0.4,norm:dbsf,form:cross_fields,correct:off,user:a%2Cb:c", {}
    )
    assert side.fusion() == FusionConfig(method="linear", lexical_weight=0.6, vector_weight=0.4, normalizer="dbsf")
    assert side.user == "a,b:c" and side.lexical_form == "cross_fields" and side.correct == "off"
    assert parse_side(side_to_url(side), {}) == side
    request = side.request("red tent", size=7)
    assert request.user == "a,b:c" and request.size == 7 and request.explain and request.fusion == side.fusion()


def test_a_preset_is_the_base_and_the_other_keys_override_it() -> None:
    known = presets(None)
    side = parse_side("preset:default,lw:0.5", known)
    assert side.fusion() == DEFAULT_FUSION.model_copy(update={"lexical_weight": 0.5})
    assert parse_side("", known) == SideConfig()
    assert parse_side("preset:bm25", known).mode == "bm25"


def test_presets_include_the_index_recommendation_and_tunes_candidates() -> None:
    assert "index" not in presets(None)
    known = presets({"fusion": {"method": "rrf", "rank_constant": 20}, "lexical": {"form": "best_fields"}})
    assert list(known)[:4] == ["index", "default", "bm25", "knn"]
    index = known["index"]
    assert index.fusion() == FusionConfig(method="rrf", rank_constant=20) and index.lexical_form == "best_fields"
    assert any(name.startswith("tune:") for name in known)


@pytest.mark.parametrize(
    ("spec", "says"),
    [
        ("mode:fast", "mode must be one of"),
        ("lw:lots", "lw must be a number"),
        ("colour:red", "use key:value with a key among"),
        ("preset:nope", "unknown preset 'nope'; known: default"),
        ("fusion:linear,lw:0,vw:0", "fusion of this side"),
    ],
)
def test_errors_say_what_is_allowed(spec: str, says: str) -> None:
    with pytest.raises(SearchRequestError, match=says):
        parse_side(spec, presets(None)).fusion()
