"""Adaptive fusion: the per-query weights, their reasons, and the fused ranking (hand-computed)."""

from __future__ import annotations

import pytest

from connector.search.adaptive import AdaptiveCoefficients, QueryEvidence, adaptive_weights, content_words
from connector.search.fusion import LegHit, fuse, fuse_explained, linear_fuse
from connector.search.models import FusionConfig


def leg(*pairs: tuple[str, float]) -> list[LegHit]:
    return [LegHit(id=i, score=s, index="idx") for i, s in pairs]


# The case: the lexical leg found dumbbells through "your", the vector leg headlamps.
LEX = leg(("dumbbell1", 4.0), ("dumbbell2", 3.0), ("lamp1", 1.0))
VEC = leg(("lamp1", 0.81), ("lamp2", 0.80), ("dumbbell1", 0.55))
LEGS = {"lexical": LEX, "vector": VEC}
ADAPTIVE = FusionConfig(method="adaptive", lexical_weight=0.7, vector_weight=0.3)
TEXT = "flashlight you wear on your head"


def test_content_words_drop_stopwords_and_flag_codes() -> None:
    assert content_words(TEXT) == (["flashlight", "wear", "head"], False)
    assert content_words("1/2 pvc coupling without stop") == (["1", "2", "pvc", "coupling", "without", "stop"], True)


def test_words_absent_from_the_index_move_the_weight_to_the_vector_leg() -> None:
    evidence = QueryEvidence(TEXT, doc_freqs={"flashlight": 0, "wear": 0, "head": 0})
    chosen = adaptive_weights(LEGS, evidence, ADAPTIVE)
    assert chosen.lexical == 0.0 and chosen.vector == 1.0
    assert chosen.coverage == 0.0 and chosen.absent == ("flashlight", "wear", "head")
    assert "flashlight, wear, head absent from the index" in chosen.describe()
    ranking, explained = fuse_explained(LEGS, ADAPTIVE, evidence=evidence)
    assert [d.id for d in ranking][:2] == ["lamp1", "lamp2"] and explained == chosen


def test_partial_coverage_scales_the_base_share() -> None:
    evidence = QueryEvidence("tent for two people", doc_freqs={"tent": 22, "two": 40, "people": 0})
    chosen = adaptive_weights(LEGS, evidence, ADAPTIVE)
    assert chosen.coverage == pytest.approx(2 / 3)
    # the default coverage power is 3
    assert chosen.lexical == pytest.approx(0.7 * (2 / 3) ** 3) and chosen.vector == pytest.approx(1 - 0.7 * 8 / 27)
    linear = adaptive_weights(LEGS, evidence, ADAPTIVE, coefficients=AdaptiveCoefficients(coverage_power=1))
    assert linear.lexical == pytest.approx(0.7 * 2 / 3)


def test_full_coverage_is_the_linear_fusion_of_the_base_weights() -> None:
    evidence = QueryEvidence("dumbbell lamp", doc_freqs={"dumbbell": 3, "lamp": 5})
    expected = linear_fuse(LEGS, normalizer="min_max", weights={"lexical": 0.7, "vector": 0.3})
    got = fuse(LEGS, ADAPTIVE, evidence=evidence)
    assert [(d.id, round(d.score, 12)) for d in got] == [(d.id, round(d.score, 12)) for d in expected]


def test_uncounted_words_keep_the_base_share() -> None:
    for evidence in (None, QueryEvidence(TEXT)):
        chosen = adaptive_weights(LEGS, evidence, ADAPTIVE)
        assert chosen.lexical == pytest.approx(0.7) and chosen.coverage is None


def test_a_code_in_the_index_keeps_the_lexical_base_share() -> None:
    evidence = QueryEvidence("sony wh1000xm4 cushions", doc_freqs={"sony": 4, "wh1000xm4": 2, "cushions": 0})
    chosen = adaptive_weights(LEGS, evidence, ADAPTIVE)
    assert chosen.lexical == pytest.approx(0.7) and any("code" in r for r in chosen.reasons)


def test_agreement_is_measured_and_moves_weight_only_when_asked() -> None:
    evidence = QueryEvidence("dumbbell lamp", doc_freqs={"dumbbell": 3, "lamp": 5})
    measured = adaptive_weights(LEGS, evidence, ADAPTIVE)
    assert measured.agreement == pytest.approx(2 / 3) and measured.lexical == pytest.approx(0.7)
    moved = adaptive_weights(LEGS, evidence, ADAPTIVE, coefficients=AdaptiveCoefficients(agreement_weight=0.5))
    assert moved.lexical == pytest.approx(0.7 - 0.5 * (1 / 3) * 0.7)
    assert measured.vector_top == 0.81 and measured.vector_gap == pytest.approx(0.81 - (0.80 + 0.55) / 2)


def test_further_signals_keep_their_configured_weight() -> None:
    config = ADAPTIVE.with_weights({"personal": 0.2})
    legs = {**LEGS, "personal": leg(("lamp2", 1.0))}
    evidence = QueryEvidence(TEXT, doc_freqs={"flashlight": 0, "wear": 0, "head": 0})
    ranking = fuse(legs, config, evidence=evidence)
    lamp2 = next(d for d in ranking if d.id == "lamp2")
    assert lamp2.legs["personal"].weight == 0.2 and lamp2.legs["vector"].weight == pytest.approx(1.0)
    assert lamp2.legs["vector"].weight + 0.0 == pytest.approx(config.lexical_weight + config.vector_weight)


def test_describe_names_the_method() -> None:
    assert ADAPTIVE.describe() == "adaptive(min_max, base w=0.7/0.3)"
    assert FusionConfig.model_validate({"method": "adaptive"}).method == "adaptive"


def test_the_weights_as_the_response_carries_them() -> None:
    evidence = QueryEvidence(TEXT, doc_freqs={"flashlight": 0, "wear": 0, "head": 0})
    model = adaptive_weights(LEGS, evidence, ADAPTIVE).to_model()
    assert model.lexical == 0.0 and model.absent_words == ["flashlight", "wear", "head"]
    assert model.coefficients["coverage_power"] == 3.0 and model.summary.startswith("lexical 0.00 / vector 1.00")
