"""The CPU-testable parts of bench/personalization.py: price bands, the populations' protocol, the rule."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

BENCH = Path(__file__).resolve().parents[3] / "bench" / "personalization.py"


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_personalization", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_price_bands(bench: ModuleType) -> None:
    assert [bench.price_band(p) for p in (None, -1, True, 0, 9.99, 10, 39.5, 150, 160, 999)] == [
        "", "", "", "under-10", "under-10", "10-20", "20-40", "80-160", "160-plus", "160-plus"
    ]  # fmt: skip


def _row(pid: str, brand: str, category: str, band: str = "") -> dict[str, str]:
    return {"_id": pid, "brand": brand, "category": category, **({"price_band": band} if band else {})}


def test_both_populations_follow_the_protocol(bench: ModuleType) -> None:
    rows = [_row("r1", "A", "shoes", "10-20"), _row("r2", "B", "bags"), _row("r3", "A", "shoes", "10-20")]
    rows += [_row(f"a{i}", "A", "shoes", "10-20" if i < 2 else "") for i in range(5)]
    rows += [_row(f"b{i}", "B", "bags") for i in range(5)]
    qrels = {"q1": {"r1": 3, "r2": 2, "r3": 0}}
    shoppers = bench.simulate(rows, qrels, history=4, seed=1)
    by_id = {s["id"]: s for s in shoppers}
    assert sorted(by_id) == ["brand-q1-0", "brand-q1-1", "category-q1-0", "category-q1-1"]
    fan = by_id["brand-q1-0"]
    assert fan["taste"] == "A" and set(fan["history"]) <= {f"a{i}" for i in range(5)}
    assert fan["truth"] == {"r1": 4, "r2": 2, "r3": 0}  # an irrelevant product of the brand stays irrelevant
    bags, shoes = by_id["category-q1-0"], by_id["category-q1-1"]  # one relevant product each: by name
    assert shoes["taste"] == "shoes" and shoes["band"] == "10-20"
    assert set(shoes["history"][:2]) == {"a0", "a1"}  # the products in the band first
    assert shoes["truth"] == {"r1": 4, "r2": 2, "r3": 0}
    assert bags["taste"] == "bags" and bags["band"] == "" and bags["truth"]["r2"] == 3


def test_the_rule_picks_the_best_tune_gain_within_the_loss_bound(bench: ModuleType) -> None:
    table = {
        0.1: {"tune_gain": 0.01, "tune_human_loss": 0.0},
        0.2: {"tune_gain": 0.02, "tune_human_loss": 0.005},
        0.3: {"tune_gain": 0.05, "tune_human_loss": 0.006},
        0.5: {"tune_gain": 0.02, "tune_human_loss": 0.001},
    }
    assert bench.choose_weight(table) == 0.2  # 0.3 loses too much; 0.5 ties 0.2: the smaller weight
    assert bench.choose_weight({0.1: {"tune_gain": 0.1, "tune_human_loss": 0.01}}) is None
