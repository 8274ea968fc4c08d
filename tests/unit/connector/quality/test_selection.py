"""The selection rule: fusion candidates scored on the same legs, chosen by bootstrap stability (no cluster)."""

from __future__ import annotations

import pytest

from connector.quality.selection import (
    SHARES,
    bootstrap_hold_shares,
    choose,
    compare_fusions,
    fusion_candidates,
)
from connector.search.fusion import LegHit, normalize
from connector.search.models import FusionConfig
from tests.unit._golden import GoldenFiles

check_golden = GoldenFiles(prefix="fusion_").check


def test_dbsf_maps_mean_plus_minus_three_std_to_zero_one() -> None:
    scores = [10.0, 8.0, 6.0, 4.0, 2.0]
    values = normalize(scores, "dbsf")
    assert values[2] == pytest.approx(0.5)  # the mean
    assert all(0.0 <= v <= 1.0 for v in values)
    assert values == sorted(values, reverse=True)
    assert normalize([3.0, 3.0], "dbsf") == [0.5, 0.5]
    assert normalize([100.0] + [1.0] * 20, "dbsf")[0] == 1.0  # an outlier is clipped


def test_every_normalizer_golden() -> None:
    scores = [12.5, 9.0, 7.25, 3.0, 0.5]
    check_golden(
        "normalizers",
        {n: [round(v, 9) for v in normalize(scores, n)] for n in ("min_max", "z_score", "l2", "dbsf", "none")},
    )


def test_hold_shares_and_the_choice() -> None:
    base = {f"q{i}": 0.5 + 0.02 * (i % 5) for i in range(20)}
    twin = dict(base)
    far = {q: v - 0.2 for q, v in base.items()}
    close = {q: v - (0.03 if i % 4 == 0 else 0.0) for i, (q, v) in enumerate(base.items())}  # 0.0075 below
    per_query = {"base": base, "twin": twin, "far": far, "close": close}
    shares = bootstrap_hold_shares(per_query, epsilon=0.01, bootstrap=400, seed=1)
    assert shares == bootstrap_hold_shares(per_query, epsilon=0.01, bootstrap=400, seed=1)  # seeded
    assert shares["base"] == shares["twin"] == 1.0
    assert shares["far"] == 0.0
    assert 0.0 < shares["close"] < 1.0  # within 0.01 of the best in some resamples, not all
    assert choose({"a": 0.5, "b": 0.6}, {"a": 0.9, "b": 0.8}) == "a"  # the steadier, not the best number
    assert choose({"a": 0.5, "b": 0.6}, {"a": 1.0, "b": 1.0}) == "b"  # tie on share: higher mean
    assert choose({"a": 0.5, "b": 0.5}, {"a": 1.0, "b": 1.0}) == "a"  # then the earlier one


def test_candidates_cover_rrf_and_every_normalizer_with_equal_and_tuned_weights() -> None:
    names = [c.name for c in fusion_candidates()]
    for normalizer in ("min_max", "z_score", "l2", "dbsf"):
        assert normalizer in names and f"{normalizer}_tuned" in names
    assert "rrf_k60" in names and "rrf_k60_tuned" in names
    assert fusion_candidates()[0].fusion == FusionConfig(method="rrf", rank_constant=60)


def _legs() -> tuple[dict[str, dict[str, list[LegHit]]], dict[str, dict[str, int]]]:
    legs, qrels = {}, {}
    for i in range(8):
        good = f"d{i}"
        lexical = [LegHit(good if i % 2 else f"x{i}", 9.0), LegHit(f"y{i}", 5.0), LegHit(good, 4.0)]
        vector = [LegHit(good, 0.9), LegHit(f"z{i}", 0.8)]
        legs[f"q{i}"] = {"lexical": lexical, "vector": vector}
        qrels[f"q{i}"] = {good: 3}
    return legs, qrels


def test_compare_fusions_scores_every_candidate_and_ships_a_weight_for_the_tuned_ones() -> None:
    legs, qrels = _legs()
    comparison = compare_fusions(legs, qrels, bootstrap=200, seed=3)
    assert comparison.queries == 8
    assert {r.name for r in comparison.results} == {c.name for c in fusion_candidates()}
    for result in comparison.results:
        assert 0.0 <= result.ndcg10 <= 1.0 and 0.0 <= result.hold_share <= 1.0
        if result.name.endswith("_tuned"):
            assert result.fusion.lexical_weight in SHARES
    assert comparison.best.hold_share == max(r.hold_share for r in comparison.results)
    assert "chosen" in comparison.format_table()
    assert comparison.to_json()["chosen"] == comparison.chosen
