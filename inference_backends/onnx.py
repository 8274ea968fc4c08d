"""ONNX Runtime pieces both model services use (see the package docstring).

- :func:`cached_export`: build ``<model folder>/.eshybrid/<key>/model.onnx`` once (else under ``~/.cache/eshybrid``
  when the model folder is read-only), in a temporary folder renamed into place, so a crash never leaves half a file
  and two replicas racing both end up with one file.
- :func:`quantize_int8`: onnxruntime's dynamic quantizer (``quantize_dynamic``): int8 weights of the MatMuls with
  per-channel scales, activations quantized per batch at run time (no calibration texts).
- :func:`cpu_session`: an ``InferenceSession`` on the CPU provider with a fixed thread count and no spin-waiting.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal

__all__ = [
    "CACHE_FOLDER",
    "INT8_RECIPE",
    "Quantization",
    "cache_dir",
    "cached_export",
    "cpu_session",
    "ffn_output_matmuls",
    "folder_revision",
    "quantize_int8",
    "user_cache",
    "variant_key",
]

logger = logging.getLogger(__name__)

Quantization = Literal["none", "int8"]
# The folder inside a model folder that holds exported variants (a model's revision ignores it).
CACHE_FOLDER = ".eshybrid"


def user_cache() -> Path:
    """The user's cache of exported models (``$XDG_CACHE_HOME/eshybrid``, else ``~/.cache/eshybrid``)."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "eshybrid"


def cache_dir(model_folder: Path, key: str, cache_root: Path | None) -> Path:
    """The cache folder of one exported variant: ``cache_root/key``, else the model folder's, else the user's.

    Raises:
        OSError: no candidate folder is writable (and none holds the file already).
    """
    candidates = [cache_root] if cache_root is not None else [model_folder / CACHE_FOLDER, user_cache()]
    for root in candidates:
        assert root is not None
        try:
            root.mkdir(parents=True, exist_ok=True)
        except OSError:
            continue
        if os.access(root, os.W_OK) or (root / key / "model.onnx").is_file():
            return root / key
    raise OSError(f"no writable cache folder for the exported model (tried {candidates})")


def cached_export(
    target: Path,
    *,
    export_fp32: Callable[[Path], None],
    quantization: Quantization,
    label: str,
) -> Path:
    """``target/model.onnx``, built on first use: ``export_fp32(path)`` writes the fp32 graph, then int8 is
    :func:`quantize_int8` of it. Exceptions of the exporter and quantizer propagate."""
    path = target / "model.onnx"
    if path.is_file():
        return path
    started = time.perf_counter()
    work = Path(tempfile.mkdtemp(prefix=".export-", dir=target.parent))
    try:
        fp32 = work / "fp32.onnx"
        export_fp32(fp32)
        if quantization == "int8":
            quantize_int8(fp32, work / "model.onnx")
        else:
            fp32.rename(work / "model.onnx")
        for leftover in work.glob("fp32.onnx*"):
            leftover.unlink()
        try:
            work.rename(target)
        except OSError:
            if not path.is_file():  # another replica won the race: use its file
                raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
    logger.info("exported %s to %s (%s) in %.1fs", label, path, quantization, time.perf_counter() - started)
    return path


# The int8 recipe's name in cache keys: a new recipe never reuses a file quantized by an older one.
INT8_RECIPE = "int8-ffnfp32"


def variant_key(quantization: Quantization) -> str:
    """What a cache key says about the quantization: ``none``, or the int8 recipe."""
    return INT8_RECIPE if quantization == "int8" else "none"


def ffn_output_matmuls(path: Path) -> list[str]:
    """Names of the feed-forward output projections (BERT-style ``.../output/dense/MatMul``, not the attention
    output) of an exported graph: the MatMuls whose input, the GELU output, has the outliers int8 handles worst."""
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    return [
        node.name
        for node in graph.node
        if node.op_type == "MatMul" and node.name.endswith("/output/dense/MatMul") and "/attention/" not in node.name
    ]


def quantize_int8(source: Path, target: Path, *, nodes_to_exclude: Sequence[str] | None = None) -> None:
    """Dynamic int8 of ``source`` into ``target`` with onnxruntime's own quantizer (``quantize_dynamic``).

    Per-channel int8 weights of the MatMuls; the feed-forward output projections stay fp32 through the
    quantizer's own ``nodes_to_exclude`` (default: :func:`ffn_output_matmuls`). Measured on 400 ESCI texts with
    all-MiniLM-L6-v2 (docs/embedding.md): every MatMul int8 gave min cosine 0.982 to fp32 (short product titles
    lowest), per-tensor scales 0.889, excluding the first, last or any single layer's projection 0.982-0.990;
    keeping the six feed-forward output projections fp32 gives min 0.995, mean 0.998, at ~70% of the speed.
    """
    from onnxruntime.quantization import QuantType, quantize_dynamic

    excluded = ffn_output_matmuls(source) if nodes_to_exclude is None else list(nodes_to_exclude)
    quantize_dynamic(
        source,
        target,
        weight_type=QuantType.QInt8,
        per_channel=True,
        op_types_to_quantize=["MatMul"],
        nodes_to_exclude=excluded,
    )


def cpu_session(path: Path, *, threads: int) -> Any:
    """An ONNX Runtime session on the CPU with ``threads`` intra-op threads."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    # No spin-waiting between ops: on a few shared cores a spinning pool steals the cores other replicas
    # (and the cluster) need.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


_SNAPSHOT = re.compile(r"/snapshots/(?P<rev>[0-9a-f]{40})(/|$)")


def folder_revision(folder: Path) -> str:
    """A revision for a model folder: the HF snapshot commit, else a short hash of file names, sizes and configs
    (the cache folder left out: an export must not change the revision it is keyed by)."""
    match = _SNAPSHOT.search(folder.resolve().as_posix())
    if match:
        return match["rev"]
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        rel = path.relative_to(folder).as_posix()
        if rel.startswith(CACHE_FOLDER + "/"):
            continue
        digest.update(f"{rel}\0{path.stat().st_size}\0".encode())
        if path.suffix == ".json" and path.stat().st_size < 1_000_000:
            digest.update(path.read_bytes())
    return "local-" + digest.hexdigest()[:12]
