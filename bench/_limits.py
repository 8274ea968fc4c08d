"""The machine's own limits, measured in the bench's run, that inference figures are stated against.

- :class:`EncoderShape`: a BERT-style encoder's matrix shapes and FLOPs from its config (pure; unit-tested);
- :func:`flops_per_doc`: FLOPs of documents at their real token counts (no padding: padding is waste the
  figure should show, not hide);
- :func:`fp32_gemm_gflops`: the machine's fp32 peak, a large square GEMM (torch, the MKL/oneDNN sgemm) at a
  thread count: ``fp32_share_of_gemm = docs/s x FLOPs per doc / that peak``;
- :func:`int8_gemm_limit`: int8 vs fp32 GEMM on the model's own shapes with the runtime the int8 backend uses
  (ONNX Runtime on the CPU, sessions as :func:`inference_backends.cpu_session` makes them): ``MatMulInteger``
  (uint8 activations x int8 weights, the quantized graph's product) against ``MatMul`` (fp32). On a CPU without
  VNNI (AVX2 only) int8 products are worth about 2x fp32 at best, so a backend's ``int8_vs_torch`` is judged
  against this figure, not against published VNNI numbers;
- :func:`openvino_gemm` / ``openvino_int8_gemm_limit``: the same products in OpenVINO, the runtime of the
  ``openvino`` backend: a one-``MatMul`` OpenVINO model per shape compiled for the CPU as the backend compiles
  (:func:`inference_backends.ov_compiled`), fp32 (``INFERENCE_PRECISION_HINT`` f32: what torch fp32 computes) vs the
  same model through ``nncf.quantize`` (the int8 form the backend's NNCF recipe produces: FakeQuantize on the
  activations, int8 weights), which the CPU plugin runs as an int8 ``FullyConnected`` (oneDNN's VNNI kernels where
  the CPU has them; the runtime precision read back from the compiled model is printed as proof). The CPU plugin's
  default precision is bf16 where the CPU has AVX-512 BF16 or AMX, so what a recipe leaves unquantized runs bf16,
  not fp32: that time is measured too (``default_s``);
- :func:`replica_counters` / :func:`where_time_goes`: a service's wall time against its replicas' own forward time
  (what the service loses to the raw model, and where).
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "EncoderShape",
    "cpu_extensions",
    "machine_limits",
    "GemmTimes",
    "flops_per_doc",
    "fp32_gemm_gflops",
    "gemm_times",
    "int8_gemm_limit",
    "OpenVinoGemm",
    "openvino_forward_ratio",
    "openvino_gemm",
    "replica_counters",
    "where_time_goes",
]


@dataclass(frozen=True)
class EncoderShape:
    """The dense shapes of a BERT-style encoder (each layer: Q, K, V and the attention output, h x h; the
    feed-forward input h x i and output i x h)."""

    layers: int
    hidden: int
    intermediate: int

    @classmethod
    def from_config(cls, config: Any) -> EncoderShape:
        return cls(int(config.num_hidden_layers), int(config.hidden_size), int(config.intermediate_size))

    def gemms(self) -> list[tuple[str, int, int, int]]:
        """``(name, K, N, count per layer)`` of each weight product (activations ``tokens x K`` times ``K x N``)."""
        h, i = self.hidden, self.intermediate
        return [("qkv_out", h, h, 4), ("ffn_in", h, i, 1), ("ffn_out", i, h, 1)]

    def flops(self, length: int) -> float:
        """FLOPs of one sequence of ``length`` tokens: the weight products (2 x multiply-adds) and attention's
        two ``L x L`` products (QK^T and AV, 2 x 2 x hidden x L^2 per layer)."""
        h, i = self.hidden, self.intermediate
        dense = 2.0 * length * (4 * h * h + 2 * h * i)
        attention = 4.0 * h * length * length
        return self.layers * (dense + attention)


def flops_per_doc(shape: EncoderShape, lengths: Sequence[int]) -> float:
    """Mean FLOPs per document over ``lengths`` (each document's real token count, special tokens included)."""
    return sum(shape.flops(n) for n in lengths) / max(1, len(lengths))


def fp32_gemm_gflops(*, threads: int, size: int = 2048, seconds: float = 2.0) -> float:
    """GFLOP/s of repeated ``size x size`` fp32 matrix products with ``threads`` torch threads (best of 3 spans)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        a = torch.randn(size, size)
        b = torch.randn(size, size)
        torch.mm(a, b)  # warm-up: thread pool, packing buffers
        best = 0.0
        for _ in range(3):
            started, count = time.perf_counter(), 0
            while time.perf_counter() - started < seconds / 3:
                torch.mm(a, b)
                count += 1
            best = max(best, 2.0 * size**3 * count / (time.perf_counter() - started) / 1e9)
        return best
    finally:
        torch.set_num_threads(before)


@dataclass(frozen=True)
class GemmTimes:
    """Seconds per product of each shape name, fp32 and int8, at one thread count."""

    fp32_s: dict[str, float]
    int8_s: dict[str, float]


def _gemm_model(path: Path, *, tokens: int, k: int, n: int, int8: bool) -> None:
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    if int8:
        weight = numpy_helper.from_array(rng.integers(-127, 128, (k, n), dtype=np.int8), "w")
        node = helper.make_node("MatMulInteger", ["a", "w"], ["y"])
        a = helper.make_tensor_value_info("a", TensorProto.UINT8, [tokens, k])
        y = helper.make_tensor_value_info("y", TensorProto.INT32, [tokens, n])
    else:
        weight = numpy_helper.from_array(rng.standard_normal((k, n), dtype=np.float32), "w")
        node = helper.make_node("MatMul", ["a", "w"], ["y"])
        a = helper.make_tensor_value_info("a", TensorProto.FLOAT, [tokens, k])
        y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [tokens, n])
    graph = helper.make_graph([node], "gemm", [a], [y], initializer=[weight])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))


def _seconds_per_run(session: Any, feed: dict[str, Any], seconds: float) -> float:
    session.run(None, feed)
    best = float("inf")
    for _ in range(3):
        started, count = time.perf_counter(), 0
        while time.perf_counter() - started < seconds / 3 or count == 0:
            session.run(None, feed)
            count += 1
        best = min(best, (time.perf_counter() - started) / count)
    return best


def gemm_times(shape: EncoderShape, *, tokens: int, threads: int, seconds: float = 0.6) -> GemmTimes:
    """fp32 ``MatMul`` and int8 ``MatMulInteger`` seconds per product of each of the model's shapes, activations
    of ``tokens`` rows, on ONNX Runtime sessions made like the backend's (``threads`` intra-op threads)."""
    import numpy as np

    from inference_backends import cpu_session

    rng = np.random.default_rng(1)
    fp32: dict[str, float] = {}
    int8: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="gemm-limit-") as tmp:
        for name, k, n, _ in shape.gemms():
            for quantized, out in ((False, fp32), (True, int8)):
                path = Path(tmp) / f"{name}-{int(quantized)}.onnx"
                _gemm_model(path, tokens=tokens, k=k, n=n, int8=quantized)
                session = cpu_session(path, threads=threads)
                a = (
                    rng.integers(0, 256, (tokens, k), dtype=np.uint8)
                    if quantized
                    else rng.standard_normal((tokens, k), dtype=np.float32)
                )
                out[name] = _seconds_per_run(session, {"a": a}, seconds)
    return GemmTimes(fp32, int8)


@dataclass(frozen=True)
class OpenVinoGemm:
    """The model's products in OpenVINO at one thread count: f32 vs int8 times (``times``), the time at the CPU
    plugin's default precision (``default_s``, what a recipe's unquantized products run at) and the runtime
    precisions the compiled models report for their ``FullyConnected`` (``default_precision``, ``int8_precision``)."""

    times: GemmTimes
    default_s: dict[str, float]
    default_precision: str
    int8_precision: str


def _ov_gemm_model(*, tokens: int, k: int, n: int) -> Any:
    import numpy as np
    import openvino as ov
    from openvino import opset13 as ops

    rng = np.random.default_rng(0)
    a = ops.parameter([tokens, k], ov.Type.f32, name="a")
    weight = ops.constant((rng.standard_normal((k, n)) * 0.05).astype(np.float32))
    return ov.Model([ops.matmul(a, weight, False, False)], [a], "gemm")


def _ov_fc_precision(compiled: Any) -> str:
    """The runtime precision of the compiled model's ``FullyConnected`` (``i8``: int8 kernels ran)."""
    from inference_backends import ov_runtime_precisions

    found = [key.split(":")[1] for key in ov_runtime_precisions(compiled) if key.startswith("FullyConnected:")]
    return found[0] if found else "none"


def openvino_gemm(shape: EncoderShape, *, tokens: int, threads: int, seconds: float = 0.6) -> OpenVinoGemm:
    """Each of the model's products in OpenVINO, activations of ``tokens`` rows: f32, the plugin's default
    precision and NNCF's int8 (calibrated on 4 random activations: scales do not change the speed)."""
    import logging

    import nncf
    import numpy as np
    import openvino as ov

    nncf.set_log_level(logging.ERROR)
    core = ov.Core()
    base = {"INFERENCE_NUM_THREADS": threads, "PERFORMANCE_HINT": "LATENCY", "NUM_STREAMS": 1}
    rng = np.random.default_rng(1)
    out: dict[str, dict[str, float]] = {"f32": {}, "default": {}, "int8": {}}
    precision = {"default": "", "int8": ""}
    for name, k, n, _ in shape.gemms():
        model = _ov_gemm_model(tokens=tokens, k=k, n=n)
        feeds = [rng.standard_normal((tokens, k)).astype(np.float32) for _ in range(4)]
        int8 = nncf.quantize(model, nncf.Dataset(feeds), subset_size=len(feeds))
        for variant, graph, extra in (
            ("f32", model, {"INFERENCE_PRECISION_HINT": "f32"}),
            ("default", model, {}),
            ("int8", int8, {}),
        ):
            compiled = core.compile_model(graph, "CPU", {**base, **extra})
            if variant in precision:
                precision[variant] = _ov_fc_precision(compiled)
            request = compiled.create_infer_request()
            out[variant][name] = _seconds_per_run(_OvRunner(request), {"a": feeds[0]}, seconds)
    return OpenVinoGemm(GemmTimes(out["f32"], out["int8"]), out["default"], precision["default"], precision["int8"])


class _OvRunner:
    """An infer request called like an ONNX Runtime session (``run(None, feed)``), for :func:`_seconds_per_run`."""

    def __init__(self, request: Any) -> None:
        self._request = request

    def run(self, _outputs: None, feed: dict[str, Any]) -> None:
        self._request.infer({0: feed["a"]})


def openvino_forward_ratio(
    fp32_path: Path, int8_path: Path, rows: list[list[int]], *, threads: int, batch_size: int, seconds: float = 1.0
) -> tuple[float, float]:
    """How much faster the int8 OpenVINO model's forward passes run than the fp32 model's in f32 (OpenVINO both,
    ``INFERENCE_PRECISION_HINT`` f32 for the reference): the int8 gain inside one runtime, what its int8 GEMM limit
    bounds (``int8_vs_torch`` mixes in how much faster OpenVINO's f32 is than torch's). Two figures: the int8 model
    as the backend compiles it (what is not quantized at the plugin's default precision, bf16 on CPUs with
    AVX-512 BF16 / AMX), and with that rest in f32 (the int8 products' own gain). ``rows`` are token ids, sorted by
    length and padded per batch as the embedder does."""
    import numpy as np

    from inference_backends import ov_compiled

    ordered = sorted(rows, key=len)
    feeds = []
    for start in range(0, len(ordered), batch_size):
        batch = ordered[start : start + batch_size]
        width = max(len(r) for r in batch)
        ids = np.zeros((len(batch), width), dtype=np.int64)
        mask = np.zeros((len(batch), width), dtype=np.int64)
        for i, row in enumerate(batch):
            ids[i, : len(row)] = row
            mask[i, : len(row)] = 1
        feeds.append({"input_ids": ids, "attention_mask": mask})
    spent = {}
    for name, path, precision in (("f32", fp32_path, "f32"), ("int8", int8_path, None), ("int8_f32", int8_path, "f32")):
        compiled = ov_compiled(path, threads=threads, precision=precision)
        spent[name] = _seconds_per_run(_OvPasses(compiled, feeds), {}, seconds)
    return spent["f32"] / spent["int8"], spent["f32"] / spent["int8_f32"]


class _OvPasses:
    """Every batch of ``feeds`` through a compiled model, called like an ONNX Runtime session."""

    def __init__(self, compiled: Any, feeds: list[dict[str, Any]]) -> None:
        self._compiled = compiled
        self._feeds = feeds

    def run(self, _outputs: None, _feed: dict[str, Any]) -> None:
        for feed in self._feeds:
            self._compiled(feed)


def int8_gemm_limit(shape: EncoderShape, times: GemmTimes, *, kept_fp32: Sequence[str] = ()) -> float:
    """How much faster a layer's weight products run int8 than fp32: fp32 time / int8 time, each shape weighted
    by its count per layer; shapes in ``kept_fp32`` stay at their fp32 time on the int8 side (a recipe that
    leaves them unquantized)."""
    fp32 = sum(count * times.fp32_s[name] for name, _, _, count in shape.gemms())
    int8 = sum(
        count * (times.fp32_s[name] if name in kept_fp32 else times.int8_s[name]) for name, _, _, count in shape.gemms()
    )
    return fp32 / int8


def machine_limits(embedder: Any, texts: list[str], *, gemm_tokens: int) -> dict[str, Any]:
    """The limits of ``bench/embed_throughput.py``'s step 4 at 1 and 2 threads: FLOPs per doc, the fp32 GEMM peak,
    the int8 GEMM limit on ONNX Runtime and in OpenVINO."""
    from transformers import AutoConfig

    shape = EncoderShape.from_config(AutoConfig.from_pretrained(str(embedder.spec.transformer_path)))
    lengths = [len(row) for row in embedder.tokenize(texts)]
    out: dict[str, Any] = {
        "gflop_per_doc": flops_per_doc(shape, lengths) / 1e9,
        "mean_tokens": sum(lengths) / len(lengths),
    }
    for threads in (1, 2):
        out[f"gemm_gflops_x{threads}"] = fp32_gemm_gflops(threads=threads)
        times = gemm_times(shape, tokens=gemm_tokens, threads=threads)
        out[f"int8_gemm_limit_x{threads}"] = int8_gemm_limit(shape, times)
        out[f"int8_gemm_limit_recipe_x{threads}"] = int8_gemm_limit(shape, times, kept_fp32=("ffn_out",))
        print(
            f"  limits x{threads}: fp32 GEMM {out[f'gemm_gflops_x{threads}']:.1f} GFLOP/s; int8/fp32 GEMM on the "
            f"model's shapes ({gemm_tokens} rows) {out[f'int8_gemm_limit_x{threads}']:.2f}x, with the recipe's "
            f"fp32 layers {out[f'int8_gemm_limit_recipe_x{threads}']:.2f}x",
            flush=True,
        )
        out.update(openvino_limits(shape, gemm_tokens=gemm_tokens, threads=threads))
    return out


def openvino_limits(shape: EncoderShape, *, gemm_tokens: int, threads: int) -> dict[str, Any]:
    """OpenVINO's int8 limit at ``threads`` (all products int8; ``_recipe``: the feed-forward output projections at
    the plugin's default precision, as the backend's recipe leaves them), and that precision's own limit."""
    ov = openvino_gemm(shape, tokens=gemm_tokens, threads=threads)
    recipe = GemmTimes(ov.times.fp32_s, {**ov.times.int8_s, "ffn_out": ov.default_s["ffn_out"]})
    out = {
        f"ov_limit_x{threads}": int8_gemm_limit(shape, ov.times),
        f"ov_limit_recipe_x{threads}": int8_gemm_limit(shape, recipe),
        f"ov_default_limit_x{threads}": int8_gemm_limit(shape, GemmTimes(ov.times.fp32_s, ov.default_s)),
        "ov_default_precision": ov.default_precision,
        "ov_int8_precision": ov.int8_precision,
    }
    print(
        f"  limits x{threads} in OpenVINO: int8 ({ov.int8_precision} FullyConnected)/f32 on the model's shapes "
        f"{out[f'ov_limit_x{threads}']:.2f}x, with the recipe's fp32 layers at the plugin default "
        f"({ov.default_precision}) {out[f'ov_limit_recipe_x{threads}']:.2f}x; {ov.default_precision}/f32 alone "
        f"{out[f'ov_default_limit_x{threads}']:.2f}x",
        flush=True,
    )
    return out


def cpu_extensions() -> str:
    """The vector extensions that set the int8 limit (from /proc/cpuinfo; 'unknown' elsewhere)."""
    try:
        flags = set(Path("/proc/cpuinfo").read_text().split())
    except OSError:
        return "unknown"
    wanted = ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "avx_vnni", "amx_int8")
    return ",".join(flag for flag in wanted if flag in flags) or "none of avx2/avx512/vnni/amx"


def replica_counters(client: Any, replicas: int, *, tries: int = 60) -> dict[str, dict[str, Any]]:
    """Each replica's ``GET /metrics`` counters (one replica answers a call: ask until every one has)."""
    seen: dict[str, dict[str, Any]] = {}
    for _ in range(tries):
        body = client._http.call("GET", "/metrics")  # noqa: SLF001 - the bench reads the replicas' own counters
        seen[str(body["replica"])] = body
        if len(seen) >= replicas:
            break
    return seen


def where_time_goes(
    before: dict[str, dict[str, Any]], after: dict[str, dict[str, Any]], *, wall_s: float, docs: int
) -> dict[str, float]:
    """The service's wall time taken apart with the replicas' counters: ``busy_share`` = forward time of all
    replicas / (replicas x wall) (1.0: the forward threads never waited for work: batching waits, HTTP, the proxy
    and JSON all hidden); ``forward_docs_per_s`` = what the replicas' forward passes alone would give (docs /
    forward time per replica); ``padding`` = padded / real tokens of the passes."""
    replicas = max(1, len(after))
    busy = sum(after[r]["forward_busy_s"] - before.get(r, {}).get("forward_busy_s", 0.0) for r in after)
    tokens = sum(after[r]["tokens"] - before.get(r, {}).get("tokens", 0) for r in after)
    padded = sum(after[r]["padded_tokens"] - before.get(r, {}).get("padded_tokens", 0) for r in after)
    return {
        "busy_share": busy / (replicas * wall_s),
        "forward_docs_per_s": docs * replicas / busy if busy else 0.0,
        "padding": padded / tokens if tokens else 0.0,
    }
