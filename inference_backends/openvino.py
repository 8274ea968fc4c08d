"""OpenVINO pieces of the CPU backends: fp32, or static int8 calibrated on sample texts (NNCF).

- :func:`cached_openvino`: build ``<cache>/<key>/model.xml`` (and ``model.bin``) once from the fp32 ONNX export,
  in a temporary folder renamed into place like :func:`inference_backends.cached_export`;
- static int8 is NNCF's post-training quantization (``nncf.quantize``, ``ModelType.TRANSFORMER``: int8 weights and
  activations with scales calibrated on the given feeds, SmoothQuant where NNCF applies it), the feed-forward output
  projections kept fp32 as in the ONNX recipe (:func:`inference_backends.ffn_output_matmuls`, the outlier-heavy
  products); the cache key names the calibration texts' hash, so other texts make another file;
- :func:`ov_compiled`: the compiled model on the CPU with a fixed thread count;
- :func:`ov_runtime_precisions`: what the CPU plugin actually runs the matrix products in (``FullyConnected:u8``:
  int8 kernels; ``FullyConnected:bf16``: the plugin's default precision on a CPU with AVX-512 BF16 or AMX).

``openvino`` and ``nncf`` are optional (the ``openvino`` extra): :func:`openvino_available` says whether they load.
"""

from __future__ import annotations

import hashlib
import logging
import shutil
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from inference_backends.onnx import Quantization, ffn_output_matmuls

__all__ = ["calibration_key", "cached_openvino", "openvino_available", "ov_compiled", "ov_runtime_precisions"]

logger = logging.getLogger(__name__)

# The static int8 recipe's name in cache keys (a new recipe never reuses an older file).
OV_INT8_RECIPE = "int8static-ffnfp32"


def openvino_available() -> bool:
    """Whether ``openvino`` and ``nncf`` import (the ``openvino`` extra is installed)."""
    try:
        import nncf  # noqa: F401
        import openvino  # noqa: F401
    except ImportError:
        return False
    return True


def calibration_key(quantization: Quantization, texts: Sequence[str]) -> str:
    """What a cache key says about an OpenVINO variant: ``none``, or the int8 recipe and the texts' hash."""
    if quantization != "int8":
        return "none"
    digest = hashlib.sha256("\0".join(texts).encode("utf-8")).hexdigest()[:10]
    return f"{OV_INT8_RECIPE}-{digest}"


def cached_openvino(
    target: Path,
    *,
    onnx_fp32: Callable[[], Path],
    quantization: Quantization,
    calibration: Callable[[], Sequence[Mapping[str, Any]]],
    label: str,
) -> Path:
    """``target/model.xml``, built on first use from the fp32 ONNX file ``onnx_fp32()`` returns; int8 is
    calibrated on the feeds ``calibration()`` returns (each one forward pass's inputs). Exceptions propagate."""
    path = target / "model.xml"
    if path.is_file():
        return path
    import openvino as ov

    started = time.perf_counter()
    source = onnx_fp32()
    model = ov.convert_model(str(source))
    if quantization == "int8":
        model = _quantize_static(model, source, list(calibration()))
    work = Path(tempfile.mkdtemp(prefix=".export-", dir=target.parent))
    try:
        ov.save_model(model, str(work / "model.xml"), compress_to_fp16=False)
        try:
            work.rename(target)
        except OSError:
            if not path.is_file():  # another replica won the race: use its file
                raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
    logger.info("converted %s to OpenVINO (%s) in %.1fs", label, quantization, time.perf_counter() - started)
    return path


def _quantize_static(model: Any, onnx_path: Path, feeds: list[Mapping[str, Any]]) -> Any:
    import nncf

    if not feeds:
        raise ValueError("static int8 needs calibration texts; give some or use quantize none")
    kept_fp32 = ffn_output_matmuls(onnx_path)  # ONNX node names are the converted ops' friendly names
    return nncf.quantize(
        model,
        nncf.Dataset(feeds),
        model_type=nncf.ModelType.TRANSFORMER,
        subset_size=len(feeds),
        ignored_scope=nncf.IgnoredScope(names=kept_fp32, validate=False),
    )


def ov_compiled(path: Path, *, threads: int, precision: str | None = None) -> Any:
    """The model at ``path`` compiled for the CPU with ``threads`` inference threads (latency hint: one stream);
    ``precision`` (e.g. ``f32``) overrides the plugin's default inference precision (bf16 on CPUs with AVX-512 BF16
    or AMX) for what is not quantized."""
    import openvino as ov

    config: dict[str, Any] = {"INFERENCE_NUM_THREADS": threads, "PERFORMANCE_HINT": "LATENCY", "NUM_STREAMS": 1}
    if precision is not None:
        config["INFERENCE_PRECISION_HINT"] = precision
    return ov.Core().compile_model(str(path), "CPU", config)


# The CPU plugin's layer types of matrix products (attention's may be fused into MHA / ScaledDotProductAttention).
_PRODUCT_LAYERS = ("FullyConnected", "MatMul", "MHA", "ScaledDotProductAttention")


def ov_runtime_precisions(compiled: Any) -> dict[str, int]:
    """``{"<layer type>:<runtime precision>": count}`` of the matrix products of a compiled model."""
    counts: dict[str, int] = {}
    for op in compiled.get_runtime_model().get_ops():
        info = op.get_rt_info()
        layer = str(info["layerType"].astype(str))
        if layer in _PRODUCT_LAYERS:
            key = f"{layer}:{info['runtimePrecision'].astype(str)}"
            counts[key] = counts.get(key, 0) + 1
    return dict(sorted(counts.items()))
