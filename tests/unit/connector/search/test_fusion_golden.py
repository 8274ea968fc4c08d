"""Two-leg fusion pinned bit for bit: outputs recorded before fusion became N-signal (issue 18).

The golden file holds every fused document's id, score and per-leg (raw, rank, normalized,
weight, contribution) for fixed inputs and every method/normalizer/missing policy; floats are
compared exactly (JSON keeps a float's repr), so any change in the arithmetic or its order shows.
"""

from __future__ import annotations

import random
from typing import Any

from connector.search.explain import hit_explanation
from connector.search.fusion import FusedDoc, LegHit, fuse
from connector.search.models import FusionConfig
from tests.unit._golden import GoldenFiles

GOLDEN = GoldenFiles(prefix="fusion_two_leg_")

CONFIGS: dict[str, FusionConfig] = {
    "rrf_default": FusionConfig(),
    "rrf_k20_weighted": FusionConfig(method="rrf", rank_constant=20, lexical_weight=0.3, vector_weight=0.7),
    # the library default before issue 23 (now the adaptive fusion's base): pinned by value
    "linear_default": FusionConfig(method="linear", normalizer="min_max", lexical_weight=0.7, vector_weight=0.3),
    "linear_min_max_half": FusionConfig(method="linear", lexical_weight=0.5, vector_weight=0.5),
    "linear_z_score": FusionConfig(method="linear", normalizer="z_score", lexical_weight=2.0, vector_weight=1.0),
    "linear_l2": FusionConfig(method="linear", normalizer="l2", lexical_weight=0.4, vector_weight=0.6),
    "linear_dbsf": FusionConfig(method="linear", normalizer="dbsf", lexical_weight=0.6, vector_weight=0.4),
    "linear_none_ignore": FusionConfig(method="linear", normalizer="none", missing="ignore"),
    "linear_min_max_ignore": FusionConfig(method="linear", lexical_weight=0.7, vector_weight=0.3, missing="ignore"),
    "vector_only_weight": FusionConfig(method="linear", lexical_weight=0.0, vector_weight=1.0),
}


def _legs(seed: int, depth: int = 12, pool: int = 20) -> dict[str, list[LegHit]]:
    """Two overlapping legs with BM25-like and cosine-like scores, a few exact ties, unsorted."""
    rng = random.Random(seed)
    ids = [f"doc-{i:03d}" for i in range(pool)]
    lexical = [
        LegHit(i, round(rng.uniform(0.5, 25.0), rng.choice([1, 2, 6, 15])), "idx") for i in rng.sample(ids, depth)
    ]
    vector = [LegHit(i, rng.uniform(0.55, 0.95), "idx") for i in rng.sample(ids, depth)]
    lexical.append(LegHit("doc-tie", lexical[0].score, "idx"))  # an exact tie in one leg
    rng.shuffle(lexical)
    rng.shuffle(vector)
    return {"lexical": lexical, "vector": vector}


INPUTS: dict[str, dict[str, list[LegHit]]] = {
    "seed1": _legs(1),
    "seed2": _legs(2, depth=6, pool=8),
    "one_empty": {"lexical": [], "vector": _legs(3)["vector"]},
    "flat": {
        "lexical": [LegHit("x", 2.0, "idx"), LegHit("y", 2.0, "idx"), LegHit("z", 1.0, "idx")],
        "vector": [LegHit("y", 0.5, "idx"), LegHit("w", 0.5, "idx")],
    },
}


def _dump(ranking: list[FusedDoc]) -> list[Any]:
    return [[doc.id, doc.score, {name: list(score) for name, score in doc.legs.items()}] for doc in ranking]


def test_two_leg_fusion_is_unchanged() -> None:
    actual = {
        f"{input_name}/{config_name}": _dump(fuse(legs, config))
        for input_name, legs in INPUTS.items()
        for config_name, config in CONFIGS.items()
    }
    GOLDEN.check("outputs", actual)


def test_two_leg_describe_is_unchanged() -> None:
    GOLDEN.check("describe", {name: config.describe() for name, config in CONFIGS.items()})


def test_two_leg_explanation_is_unchanged() -> None:
    legs = INPUTS["seed2"]
    actual = {
        name: [
            hit_explanation(doc, mode="hybrid", strategy="client", fusion=config).model_dump(mode="json")
            for doc in fuse(legs, config)[:4]
        ]
        for name, config in CONFIGS.items()
        if name in ("rrf_default", "linear_default")
    }
    GOLDEN.check("explanations", actual)
