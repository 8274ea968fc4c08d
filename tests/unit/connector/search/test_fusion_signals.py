"""N-signal fusion: any number of named signals, per-signal weights, explain per signal."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from connector.errors import SearchRequestError
from connector.search.explain import format_hits, hit_explanation
from connector.search.fusion import FusedDoc, LegHit, fuse
from connector.search.models import DEFAULT_FUSION, FusionConfig, SearchHit, SearchResponse


def leg(*pairs: tuple[str, float]) -> list[LegHit]:
    return [LegHit(id=i, score=s, index="idx") for i, s in pairs]


LEX = leg(("a", 10.0), ("b", 6.0), ("c", 2.0))
VEC = leg(("c", 0.9), ("d", 0.8), ("a", 0.7))
# A signal over the candidates only (as the personal signal is): every doc of the two legs.
PERS = leg(("d", 0.9), ("b", 0.5), ("a", 0.3), ("c", 0.1))
THREE = {"lexical": LEX, "vector": VEC, "personal": PERS}


def scores_of(fused: list[FusedDoc]) -> dict[str, float]:
    return {d.id: d.score for d in fused}


def test_rrf_three_signals_hand_computed() -> None:
    config = FusionConfig(weights={"personal": 0.5})
    fused = fuse(THREE, config)
    assert scores_of(fused) == pytest.approx(
        {
            "a": 1 / 61 + 1 / 63 + 0.5 / 63,
            "b": 1 / 62 + 0.5 / 62,
            "c": 1 / 63 + 1 / 61 + 0.5 / 64,
            "d": 1 / 62 + 0.5 / 61,
        }
    )
    assert [d.id for d in fused] == ["a", "c", "d", "b"]
    personal = fused[2].legs["personal"]
    assert (personal.rank, personal.raw_score, personal.weight) == (1, 0.9, 0.5)
    assert personal.contribution == pytest.approx(0.5 / 61)


def test_linear_three_signals_missing_zero_counts_every_weight() -> None:
    config = FusionConfig(method="linear", lexical_weight=0.5, vector_weight=0.3, weights={"personal": 0.2})
    fused = fuse(THREE, config)
    # lexical a=1 b=.5 c=0; vector c=1 d=.5 a=0; personal d=1 b=.5 a=.25 c=0
    assert scores_of(fused) == pytest.approx({"a": 0.5 + 0.2 * 0.25, "b": 0.25 + 0.1, "c": 0.3, "d": 0.15 + 0.2})
    assert [d.id for d in fused] == ["a", "b", "d", "c"]


def test_linear_dbsf_and_ignore_over_three_signals() -> None:
    ignore = FusionConfig(method="linear", missing="ignore", weights={"personal": 1.0})
    fused = scores_of(fuse(THREE, ignore))
    assert fused["b"] == pytest.approx((0.5 + 0.5) / 2)  # mean over the signals that returned b
    dbsf = fuse(THREE, FusionConfig(method="linear", normalizer="dbsf", weights={"personal": 1.0}))
    assert all(0.0 <= d.score <= 1.0 for d in dbsf)
    assert set(dbsf[0].legs) <= {"lexical", "vector", "personal"}


def test_zero_weight_signal_changes_no_ranking() -> None:
    for base in (FusionConfig(), DEFAULT_FUSION):
        two = fuse({"lexical": LEX, "vector": VEC}, base)
        rrf_or_linear = fuse(THREE, base.with_weights({"personal": 0.0}))
        assert [d.id for d in rrf_or_linear] == [d.id for d in two]


def test_signal_order_of_the_mapping_does_not_change_the_ranking() -> None:
    config = FusionConfig(method="linear", weights={"personal": 0.7})
    reordered = {"personal": PERS, "vector": VEC, "lexical": LEX}
    assert [(d.id, round(d.score, 12)) for d in fuse(THREE, config)] == [
        (d.id, round(d.score, 12)) for d in fuse(reordered, config)
    ]


def test_ties_fall_to_id_across_signals() -> None:
    signals = {"lexical": leg(("b", 1.0)), "vector": leg(("a", 1.0)), "image": leg(("c", 1.0))}
    fused = fuse(signals, FusionConfig(weights={"image": 1.0}))
    assert [d.id for d in fused] == ["a", "b", "c"]


def test_a_signal_without_weight_is_a_clear_error() -> None:
    with pytest.raises(SearchRequestError) as err:
        fuse(THREE, FusionConfig())
    assert err.value.field == "personal_weight"  # type: ignore[attr-defined]


def test_weights_mapping_validation_and_leg_spelling() -> None:
    config = FusionConfig(weights={"lexical": 0.6, "vector": 0.4, "personal": 0.2})
    assert (config.lexical_weight, config.vector_weight, config.weights) == (0.6, 0.4, {"personal": 0.2})
    assert config.weight("personal") == 0.2
    assert config.signal_weights(["vector", "personal"]) == {"vector": 0.4, "personal": 0.2}
    with pytest.raises(ValidationError):
        FusionConfig(lexical_weight=0.5, weights={"lexical": 0.6})
    assert FusionConfig(lexical_weight=0.6, weights={"lexical": 0.6}).lexical_weight == 0.6
    for bad in ({"Personal": 1.0}, {"personal": -1.0}, {"personal": float("nan")}, {"p" * 40: 1.0}):
        with pytest.raises(ValidationError):
            FusionConfig(weights=bad)
    assert FusionConfig(lexical_weight=0, vector_weight=0, weights={"image": 1.0}).weight("image") == 1.0
    with pytest.raises(ValidationError):
        FusionConfig(lexical_weight=0, vector_weight=0, weights={"image": 0.0})


def test_with_weights_and_describe() -> None:
    config = DEFAULT_FUSION.with_weights({"personal": 0.25, "vector": 0.35})
    assert (config.lexical_weight, config.vector_weight, config.weights) == (0.7, 0.35, {"personal": 0.25})
    assert DEFAULT_FUSION.weights == {}
    assert config.describe() == "adaptive(min_max, base w=0.7/0.35, personal=0.25)"
    assert FusionConfig(weights={"personal": 1.0, "image": 0.5}).describe() == "rrf(k=60, w=1/1, image=0.5, personal=1)"


def test_two_leg_config_serialises_without_weights() -> None:
    assert "weights" not in DEFAULT_FUSION.model_dump()
    assert "weights" not in DEFAULT_FUSION.model_dump_json()
    with_personal = DEFAULT_FUSION.with_weights({"personal": 0.25})
    dumped = with_personal.model_dump()
    assert dumped["weights"] == {"personal": 0.25}
    assert FusionConfig(**dumped) == with_personal
    assert FusionConfig.model_validate_json(with_personal.model_dump_json()) == with_personal


def test_explanation_per_signal_and_table() -> None:
    config = FusionConfig(method="linear", weights={"personal": 0.5})
    fused = fuse(THREE, config)
    e = hit_explanation(fused[0], mode="hybrid", strategy="client", fusion=config, signals=["personal"])
    assert e.signals is not None and e.signals["personal"].weight == 0.5
    assert e.signals["personal"].contribution == pytest.approx(fused[0].legs["personal"].contribution)
    assert "signals" in e.model_dump()
    plain = hit_explanation(fused[0], mode="hybrid", strategy="client", fusion=config)
    assert "signals" not in plain.model_dump()
    missed = fuse({**THREE, "personal": leg(("a", 1.0))}, config)
    b = next(d for d in missed if d.id == "b")
    eb = hit_explanation(b, mode="hybrid", strategy="client", fusion=config, signals=["personal"])
    assert eb.signals is not None and eb.signals["personal"].rank is None and eb.signals["personal"].weight == 0.5
    response = SearchResponse(
        index="idx",
        query="q",
        mode="hybrid",
        strategy="client",
        fusion=config,
        page=1,
        size=2,
        max_depth=10,
        hits=[SearchHit(id=d.id, index="idx", rank=1, score=d.score, explanation=e) for d in fused[:1]],
    )
    table = format_hits(response)
    assert "pers.raw" in table.splitlines()[0] and "pers.norm" in table.splitlines()[0]


def test_the_table_shows_the_affinities_that_moved_a_hit() -> None:
    config = FusionConfig(method="linear", weights={"personal": 0.5})
    fused = fuse(THREE, config)
    taste = {"category.keyword=shoes": 0.25, "brand.keyword=Acme": 0.62}
    e = hit_explanation(
        fused[0], mode="hybrid", strategy="client", fusion=config, signals=["personal"], affinities=taste
    )
    assert e.affinities == taste and "affinities" in e.model_dump()
    assert "affinities" not in hit_explanation(fused[0], mode="hybrid", strategy="client", fusion=config).model_dump()
    response = SearchResponse(
        index="idx", query="q", mode="hybrid", strategy="client", fusion=config, page=1, size=1, max_depth=10,
        hits=[SearchHit(id=fused[0].id, index="idx", rank=1, score=fused[0].score, explanation=e)],
    )  # fmt: skip
    header, row = format_hits(response).splitlines()[:2]
    assert "taste" in header and "brand.keyword=Acme 0.62, category.keyword=shoes 0.25" in row
