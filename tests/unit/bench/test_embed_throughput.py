"""The CPU-testable parts of bench/embed_throughput.py: the GPU roofline arithmetic, nDCG@10, the calibration
sample and the OpenVINO rule."""

from __future__ import annotations

import importlib.util
import json
import math
import sys
from pathlib import Path
from types import ModuleType

import pytest

from bench._embed_quality import calibration_sample, ndcg_at_10, openvino_rule

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


def test_ndcg_at_10() -> None:
    judged = {"a": 3, "b": 1}
    assert ndcg_at_10(["a", "b"], judged) == pytest.approx(1.0)
    swapped = (1 / math.log2(2) + 3 / math.log2(3)) / (3 / math.log2(2) + 1 / math.log2(3))
    assert ndcg_at_10(["b", "a"], judged) == pytest.approx(swapped)
    assert ndcg_at_10(["x"] * 10 + ["a"], judged) == 0.0  # beyond rank 10
    assert ndcg_at_10(["a"], {}) == 0.0


def _corpus(folder: Path, count: int) -> Path:
    rows = [{"_id": f"d{i}", "title": f"title {i}", "text": f"text {i}" if i % 3 else ""} for i in range(count)]
    rows.append({"_id": "empty", "title": "", "text": ""})  # unembeddable: never a calibration text
    (folder / "corpus.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return folder


def test_calibration_sample_is_seeded_rendered_and_leaves_out_the_pool(tmp_path: Path) -> None:
    data = _corpus(tmp_path, 50)
    pool = {f"d{i}" for i in range(10)}
    first = calibration_sample(data, size=20, seed=3, exclude=pool)
    assert first == calibration_sample(data, size=20, seed=3, exclude=pool)  # the seed draws the same sample
    assert first != calibration_sample(data, size=20, seed=4, exclude=pool)
    assert len(first) == 20 and len(set(first)) == 20
    assert not {f"title {i}" for i in range(10)} & {t.split("\n")[0] for t in first}
    assert "title 4\ntext 4" in calibration_sample(data, size=60, seed=0, exclude=())  # the backfill's rendering
    assert "title 3" in calibration_sample(data, size=60, seed=0, exclude=())  # an empty field left out
    assert len(calibration_sample(data, size=60, seed=0, exclude=())) == 50


def test_openvino_rule() -> None:
    rates = {"openvino int8 x1": 30.0, "onnx int8 x1": 20.0, "openvino int8 x2": 50.0, "onnx int8 x2": 40.0}
    ndcg = {"knn": {"fp32": 0.70, "openvino_int8": 0.696}, "hybrid": {"fp32": 0.75, "openvino_int8": 0.752}}
    assert openvino_rule(rates, 0.995, ndcg) == ("pass", [])
    outcome, failed = openvino_rule({**rates, "openvino int8 x2": 40.0}, 0.985, ndcg)
    assert outcome == "fail" and len(failed) == 2 and "0.9850 < 0.99" in failed[0] and "x2" in failed[1]
    worse = {**ndcg, "knn": {"fp32": 0.70, "openvino_int8": 0.69}}
    assert openvino_rule(rates, 0.995, worse)[1] == ["knn nDCG@10 loss 0.0100 > 0.005"]
