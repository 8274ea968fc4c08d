"""The CPU-testable parts of bench/embed_throughput.py: the GPU roofline arithmetic and nDCG@10."""

from __future__ import annotations

import importlib.util
import math
import sys
from pathlib import Path
from types import ModuleType

import pytest

BENCH = Path(__file__).resolve().parents[3] / "bench" / "embed_throughput.py"


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_embed_throughput", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_flop_per_doc_is_the_issues_formula(bench: ModuleType) -> None:
    # 21.2 MFLOP/token for the matrix products + 9,216 x L FLOP/token of attention, times L tokens.
    assert bench.flop_per_doc(128) == pytest.approx(128 * (21.2e6 + 9216 * 128))
    assert bench.flop_per_doc(256) == pytest.approx(256 * 21.2e6 + 9216 * 256**2)
    assert bench.flop_per_doc(256) / bench.flop_per_doc(128) > 2.0  # attention grows with L^2


def test_roofline_share(bench: ModuleType) -> None:
    peak = 989.0
    # The docs/s that would be exactly the dense bf16 peak: share 1.
    full = peak * 1e12 / bench.flop_per_doc(128)
    assert bench.roofline_share(full, 128, peak) == pytest.approx(1.0)
    assert bench.roofline_share(full / 4, 128, peak) == pytest.approx(0.25)
    # ~2.84 GFLOP per 128-token doc: 100k docs/s is ~29.0% of 989 TFLOP/s.
    assert bench.roofline_share(100_000, 128, peak) == pytest.approx(0.2896, abs=1e-3)


def test_ndcg_at_10(bench: ModuleType) -> None:
    judged = {"a": 3, "b": 1}
    assert bench.ndcg_at_10(["a", "b"], judged) == pytest.approx(1.0)
    swapped = (1 / math.log2(2) + 3 / math.log2(3)) / (3 / math.log2(2) + 1 / math.log2(3))
    assert bench.ndcg_at_10(["b", "a"], judged) == pytest.approx(swapped)
    assert bench.ndcg_at_10(["x"] * 10 + ["a"], judged) == 0.0  # beyond rank 10
    assert bench.ndcg_at_10(["a"], {}) == 0.0
