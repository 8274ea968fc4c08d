"""The pure parts of bench/_limits.py: an encoder's shapes and FLOPs, and the int8 GEMM limit's arithmetic."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from bench._limits import EncoderShape, GemmTimes, flops_per_doc, int8_gemm_limit

MINILM = EncoderShape(layers=6, hidden=384, intermediate=1536)


def test_shape_from_a_bert_config() -> None:
    config = SimpleNamespace(num_hidden_layers=6, hidden_size=384, intermediate_size=1536)
    assert EncoderShape.from_config(config) == MINILM
    assert MINILM.gemms() == [("qkv_out", 384, 384, 4), ("ffn_in", 384, 1536, 1), ("ffn_out", 1536, 384, 1)]


def test_flops_are_the_roofline_formula() -> None:
    # all-MiniLM-L6-v2: ~21.2 MFLOP per token of weight products + 9,216 x L FLOP per token of attention.
    dense_per_token = 6 * 2 * (4 * 384 * 384 + 2 * 384 * 1536)
    assert dense_per_token == pytest.approx(21.2e6, rel=0.06)
    assert MINILM.flops(128) == pytest.approx(128 * (dense_per_token + 9216 * 128))
    assert flops_per_doc(MINILM, [10, 30]) == pytest.approx((MINILM.flops(10) + MINILM.flops(30)) / 2)
    assert flops_per_doc(MINILM, []) == 0.0


def test_int8_gemm_limit_weights_shapes_by_count_and_keeps_fp32_layers() -> None:
    times = GemmTimes(
        fp32_s={"qkv_out": 1.0, "ffn_in": 4.0, "ffn_out": 4.0}, int8_s={"qkv_out": 0.5, "ffn_in": 1.0, "ffn_out": 1.0}
    )
    assert int8_gemm_limit(MINILM, times) == pytest.approx((4 + 4 + 4) / (2 + 1 + 1))
    assert int8_gemm_limit(MINILM, times, kept_fp32=("ffn_out",)) == pytest.approx(12 / (2 + 1 + 4))


def test_openvino_gemm_runs_int8_kernels() -> None:
    pytest.importorskip("openvino")
    pytest.importorskip("nncf")
    from bench._limits import openvino_gemm

    tiny = EncoderShape(layers=1, hidden=64, intermediate=128)
    result = openvino_gemm(tiny, tokens=16, threads=1, seconds=0.03)
    assert (
        set(result.times.fp32_s)
        == set(result.times.int8_s)
        == set(result.default_s)
        == {"qkv_out", "ffn_in", "ffn_out"}
    )
    assert result.int8_precision in ("i8", "u8")  # the compiled FullyConnected runs int8
    assert result.default_precision in ("f32", "bf16", "f16")
    assert int8_gemm_limit(tiny, result.times) > 0
