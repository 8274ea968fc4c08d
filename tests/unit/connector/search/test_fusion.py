"""Fusion: RRF and normalized linear combination, hand-computed expectations."""

from __future__ import annotations

import math

import pytest
from pydantic import ValidationError

from connector.errors import SearchRequestError
from connector.search.fusion import FusedDoc, LegHit, fuse, linear_fuse, normalize, rank_leg, rrf_fuse, single_leg
from connector.search.models import FusionConfig


def leg(*pairs: tuple[str, float]) -> list[LegHit]:
    return [LegHit(id=i, score=s, index="idx") for i, s in pairs]


def scores_of(fused: list[FusedDoc]) -> dict[str, float]:
    return {d.id: d.score for d in fused}


LEX = leg(("a", 10.0), ("b", 6.0), ("c", 2.0))
VEC = leg(("c", 0.9), ("d", 0.8), ("a", 0.7))
BOTH = {"lexical": LEX, "vector": VEC}
W = {"lexical": 1.0, "vector": 1.0}


def test_rank_leg_orders_by_score_then_id_and_drops_repeats() -> None:
    hits = leg(("z", 1.0), ("b", 2.0), ("a", 1.0), ("b", 0.5))
    assert [h.id for h in rank_leg(hits)] == ["b", "a", "z"]


def test_normalizers() -> None:
    assert normalize([4.0, 2.0, 0.0], "min_max") == [1.0, 0.5, 0.0]
    assert normalize([3.0, 3.0], "min_max") == [1.0, 1.0]  # a lone/flat leg is its own best
    assert normalize([], "min_max") == []
    z = normalize([1.0, 2.0, 3.0], "z_score")
    assert z == pytest.approx([-math.sqrt(1.5), 0.0, math.sqrt(1.5)])
    assert normalize([5.0, 5.0], "z_score") == [0.0, 0.0]
    assert normalize([3.0, 4.0], "l2") == pytest.approx([0.6, 0.8])
    assert normalize([0.0, 0.0], "l2") == [0.0, 0.0]
    assert normalize([7.0, 1.0], "none") == [7.0, 1.0]
    with pytest.raises(SearchRequestError):
        normalize([1.0], "softmax")  # type: ignore[arg-type]


def test_rrf_hand_computed() -> None:
    fused = rrf_fuse(BOTH, rank_constant=60, weights=W)
    assert scores_of(fused) == pytest.approx({"a": 1 / 61 + 1 / 63, "c": 1 / 63 + 1 / 61, "b": 1 / 62, "d": 1 / 62})
    # a and c tie exactly, so do b and d: ties go by _id
    assert [d.id for d in fused] == ["a", "c", "b", "d"]


def test_rrf_missing_leg_contributes_nothing_and_is_explained() -> None:
    fused = {d.id: d for d in rrf_fuse(BOTH, rank_constant=60, weights=W)}
    assert set(fused["b"].legs) == {"lexical"}
    b = fused["b"].legs["lexical"]
    assert (b.rank, b.raw_score, b.weight) == (2, 6.0, 1.0)
    assert b.normalized == pytest.approx(1 / 62)
    assert b.contribution == pytest.approx(1 / 62)


def test_rrf_weights() -> None:
    fused = rrf_fuse(BOTH, rank_constant=1, weights={"lexical": 3.0, "vector": 1.0})
    assert scores_of(fused) == pytest.approx({"a": 3 / 2 + 1 / 4, "c": 3 / 4 + 1 / 2, "b": 3 / 3, "d": 1 / 3})
    assert [d.id for d in fused] == ["a", "c", "b", "d"]


def test_linear_min_max_missing_zero() -> None:
    fused = linear_fuse(BOTH, normalizer="min_max", weights=W, missing="zero")
    # lexical: a=1, b=0.5, c=0 ; vector: c=1, d=0.5, a=0
    assert scores_of(fused) == pytest.approx({"a": 0.5, "b": 0.25, "c": 0.5, "d": 0.25})
    assert [d.id for d in fused] == ["a", "c", "b", "d"]
    assert fused[2].legs["lexical"].normalized == pytest.approx(0.5)


def test_linear_missing_ignore_averages_present_legs_only() -> None:
    fused = linear_fuse(BOTH, normalizer="min_max", weights=W, missing="ignore")
    assert scores_of(fused) == pytest.approx({"a": 0.5, "b": 0.5, "c": 0.5, "d": 0.5})
    assert [d.id for d in fused] == ["a", "b", "c", "d"]


def test_linear_weights_are_relative() -> None:
    one = linear_fuse(BOTH, weights={"lexical": 0.3, "vector": 0.7})
    ten = linear_fuse(BOTH, weights={"lexical": 3.0, "vector": 7.0})
    assert [(d.id, round(d.score, 12)) for d in one] == [(d.id, round(d.score, 12)) for d in ten]
    assert scores_of(one) == pytest.approx({"a": 0.3, "c": 0.7, "d": 0.35, "b": 0.15})


def test_linear_l2_and_none() -> None:
    lex = leg(("a", 3.0), ("b", 4.0))
    vec = leg(("a", 1.0))
    l2 = scores_of(linear_fuse({"lexical": lex, "vector": vec}, normalizer="l2", weights=W))
    assert l2 == pytest.approx({"a": (0.6 + 1.0) / 2, "b": 0.8 / 2})
    raw = scores_of(linear_fuse({"lexical": lex, "vector": vec}, normalizer="none", weights=W))
    assert raw == pytest.approx({"a": 2.0, "b": 2.0})


def test_one_empty_leg() -> None:
    fused = fuse({"lexical": [], "vector": VEC}, FusionConfig(method="linear"))
    assert [d.id for d in fused] == ["c", "d", "a"]
    assert fused[0].score == pytest.approx(0.5)


def test_single_leg_keeps_raw_scores() -> None:
    ranking = single_leg(leg(("b", 1.0), ("a", 1.0), ("c", 3.0)), leg="lexical")
    assert [(d.id, d.score, d.legs["lexical"].rank) for d in ranking] == [("c", 3.0, 1), ("a", 1.0, 2), ("b", 1.0, 3)]


def test_fuse_dispatch_and_determinism() -> None:
    legs = {"lexical": list(reversed(LEX)), "vector": list(reversed(VEC))}
    assert [d.id for d in fuse(legs, FusionConfig())] == ["a", "c", "b", "d"]
    linear = fuse(legs, FusionConfig(method="linear", lexical_weight=0.5, vector_weight=0.5))
    assert [d.id for d in linear] == ["a", "c", "b", "d"]


def test_bad_weights_and_constants() -> None:
    with pytest.raises(SearchRequestError) as err:
        rrf_fuse({"lexical": LEX}, weights={"lexical": -1.0})
    assert err.value.field == "lexical_weight"  # type: ignore[attr-defined]
    with pytest.raises(SearchRequestError):
        rrf_fuse({"lexical": LEX}, rank_constant=0, weights={"lexical": 1.0})
    with pytest.raises(SearchRequestError):
        linear_fuse({"lexical": LEX}, weights={})
    with pytest.raises(SearchRequestError):
        linear_fuse({"lexical": LEX}, weights={"lexical": 1.0}, missing="half")  # type: ignore[arg-type]
    with pytest.raises(ValidationError):
        FusionConfig(lexical_weight=0, vector_weight=0)
    with pytest.raises(ValidationError):
        FusionConfig(method="borda")  # type: ignore[arg-type]
    with pytest.raises(ValidationError):
        FusionConfig(surprise=1)  # type: ignore[call-arg]


def test_fusion_config_describe() -> None:
    assert FusionConfig().describe() == "rrf(k=60, w=1/1)"
    assert FusionConfig(method="linear", lexical_weight=0.3, vector_weight=0.7).describe() == (
        "linear(min_max, w=0.3/0.7)"
    )
