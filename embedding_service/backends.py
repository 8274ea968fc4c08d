"""Inference backends for CPU: ONNX Runtime (fp32 or dynamic int8), exported once from the local model folder.

The export is torch's own ONNX exporter (``torch.onnx.export``, TorchScript-based, eager attention) over the transformer that the torch backend
loads, and int8 is onnxruntime's dynamic quantizer (``onnxruntime.quantization.quantize_dynamic``: per-channel
int8 weights of the MatMuls but the feed-forward output projections, activations quantized per batch at run
time, so no calibration texts are needed;
static int8 is not offered). Both are
maintained libraries; nothing here edits a graph by hand. The files are cached beside the model
(``<model folder>/.eshybrid/<key>/model.onnx``, else under ``~/.cache/eshybrid`` when that folder is read-only),
keyed by the model revision, backend and quantization, so the export happens once.

OpenVINO (``backend=openvino``, the ``openvino`` extra) converts that fp32 export; its int8 is static, NNCF's
post-training quantization calibrated on sample texts (:func:`export_openvino`, :mod:`inference_backends.openvino`).

``choose_backend`` is ``backend=auto``: the fastest candidate whose vectors stay within ``min_cosine`` of torch
fp32 on a few sample texts.
"""

from __future__ import annotations

import json
import logging
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from embedding_service.errors import ModelLoadError
from embedding_service.model_spec import ModelSpec
from embedding_service.settings import Backend, Quantization
from inference_backends import (
    cache_dir,
    cached_export,
    cached_openvino,
    calibration_key,
    cpu_session,
    ov_compiled,
    variant_key,
)

__all__ = [
    "AUTO_SAMPLE_TEXTS",
    "BackendChoice",
    "OnnxModel",
    "OpenVinoModel",
    "cache_key",
    "calibration_texts",
    "choose_backend",
    "export_onnx",
    "export_openvino",
    "min_cosine",
]

logger = logging.getLogger(__name__)

# Texts for the startup quality check of backend=auto: product-like titles and descriptions of several
# lengths (bundled, so the check needs no index and no network).
AUTO_SAMPLE_TEXTS: tuple[str, ...] = (
    "Kindle Paperwhite, now waterproof with 2x the storage, glare-free 300 ppi display",
    "organic green tea bags, pack of 100, caffeine free",
    "USB-C charging cable, fast charge, braided nylon, 6 feet, compatible with phones and laptops",
    "kids building set with 500 pieces: a fire station, two trucks and four figures. Ages 6 and up.",
    "Men's waterproof hiking boots with ankle support and a Vibram sole for rocky trails",
    "stainless steel insulated water bottle keeps drinks cold for 24 hours and hot for 12 hours",
    "warm sleeping bag for winter camping rated to -10 C, mummy shape, compression sack included. "
    "The shell is ripstop nylon with a water-repellent finish; the fill is recycled synthetic insulation that "
    "stays warm when damp. Two-way zip, draft collar and hood cinch.",
    "wireless noise cancelling headphones",
)
_EXPORT_OPSET = 17


def cache_key(spec: ModelSpec, *, backend: Backend, quantization: Quantization) -> str:
    """The cache folder name of one exported variant: revision + backend + quantization."""
    return f"{backend}-{variant_key(quantization)}-{spec.revision}"


def export_onnx(
    spec: ModelSpec,
    *,
    quantization: Quantization,
    cache_root: Path | None = None,
    trust_remote_code: bool = False,
) -> Path:
    """The ONNX file of ``spec``'s transformer (token vectors out), exported and quantized on first use.

    Returns:
        Path of ``model.onnx`` inside the cache folder of this revision and quantization.

    Raises:
        ModelLoadError: the export or the quantization failed (the message says which).
    """
    key = cache_key(spec, backend="onnx", quantization=quantization)
    try:
        target = cache_dir(spec.folder, key, cache_root)
    except OSError as e:
        raise ModelLoadError(str(e), path=str(spec.folder)) from e
    try:
        return cached_export(
            target,
            export_fp32=lambda path: _export_fp32(spec, path, trust_remote_code=trust_remote_code),
            quantization=quantization,
            label=spec.model_id,
        )
    except Exception as e:  # the exporter and quantizer raise many types; all mean "no ONNX model"
        raise ModelLoadError(f"exporting {spec.transformer_path} to ONNX ({quantization}) failed: {e}") from e


def _export_fp32(spec: ModelSpec, path: Path, *, trust_remote_code: bool) -> None:
    import torch
    from transformers import AutoModel

    # Eager attention and torch's TorchScript-based exporter: measured here, that graph runs int8 ~2.5x torch fp32,
    # while the dynamo exporter's (SDPA decomposed) ran int8 no faster than torch.
    model = AutoModel.from_pretrained(
        str(spec.transformer_path), trust_remote_code=trust_remote_code, attn_implementation="eager"
    ).eval()

    class _TokenVectors(torch.nn.Module):
        # The exported graph takes exactly what Embedder.forward feeds and returns the token vectors.
        def __init__(self, inner: torch.nn.Module) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
            output = self.inner(input_ids=input_ids, attention_mask=attention_mask)
            return output.last_hidden_state if hasattr(output, "last_hidden_state") else output[0]

    ids = torch.ones((2, 8), dtype=torch.int64)
    mask = torch.ones((2, 8), dtype=torch.int64)
    mask[1, 5:] = 0  # a padded row, so the mask path is traced as it runs
    axes = {0: "batch", 1: "tokens"}
    with torch.inference_mode(False), torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation and tracer warnings
        torch.onnx.export(
            _TokenVectors(model),
            (ids, mask),
            str(path),
            input_names=["input_ids", "attention_mask"],
            output_names=["last_hidden_state"],
            dynamic_axes={"input_ids": axes, "attention_mask": axes, "last_hidden_state": axes},
            opset_version=_EXPORT_OPSET,
            dynamo=False,
        )


def calibration_texts(calibration_file: str | None) -> list[str]:
    """The texts static int8 is calibrated on: the file's non-empty lines (a ``*.jsonl`` file: one JSON string a
    line, as ``eshybrid calibration-sample`` writes them), else :data:`AUTO_SAMPLE_TEXTS`.

    Raises:
        ModelLoadError: the file cannot be read, is not JSON lines of strings where named ``.jsonl``, or holds no
            text.
    """
    if calibration_file is None:
        return list(AUTO_SAMPLE_TEXTS)
    try:
        lines = Path(calibration_file).read_text(encoding="utf-8").splitlines()
    except OSError as e:
        raise ModelLoadError(f"cannot read calibration_file {calibration_file}: {e}", path=calibration_file) from e
    if calibration_file.endswith(".jsonl"):
        lines = [_json_text(line, calibration_file, number) for number, line in enumerate(lines, 1) if line.strip()]
    texts = [line.strip() for line in lines if line.strip()]
    if not texts:
        raise ModelLoadError(
            f"calibration_file {calibration_file} holds no text; write one text per line", path=calibration_file
        )
    return texts


def _json_text(line: str, calibration_file: str, number: int) -> str:
    try:
        text = json.loads(line)
    except ValueError as e:
        raise ModelLoadError(
            f"calibration_file {calibration_file} line {number} is not JSON ({e}); a .jsonl file holds one JSON "
            "string a line (eshybrid calibration-sample writes one), or name the file .txt for plain lines",
            path=calibration_file,
        ) from e
    if not isinstance(text, str):
        raise ModelLoadError(
            f"calibration_file {calibration_file} line {number} is a {type(text).__name__}, not a JSON string",
            path=calibration_file,
        )
    return text


def export_openvino(
    spec: ModelSpec,
    *,
    quantization: Quantization,
    texts: Sequence[str],
    tokenize: Callable[[Sequence[str]], list[list[int]]],
    cache_root: Path | None = None,
    trust_remote_code: bool = False,
) -> Path:
    """The OpenVINO ``model.xml`` of ``spec``'s transformer, converted from the fp32 ONNX export on first use;
    int8 calibrated on ``texts`` (each tokenized by ``tokenize``, one forward pass's feed per text).

    Raises:
        ModelLoadError: the export, conversion or quantization failed (or openvino is not installed).
    """
    key = f"openvino-{calibration_key(quantization, texts)}-{spec.revision}"
    try:
        target = cache_dir(spec.folder, key, cache_root)
    except OSError as e:
        raise ModelLoadError(str(e), path=str(spec.folder)) from e

    def feeds() -> list[dict[str, np.ndarray]]:
        rows = tokenize(texts)
        return [
            {"input_ids": np.asarray([row], dtype=np.int64), "attention_mask": np.ones((1, len(row)), dtype=np.int64)}
            for row in rows
        ]

    try:
        return cached_openvino(
            target,
            onnx_fp32=lambda: export_onnx(
                spec, quantization="none", cache_root=cache_root, trust_remote_code=trust_remote_code
            ),
            quantization=quantization,
            calibration=feeds,
            label=spec.model_id,
        )
    except ImportError as e:
        raise ModelLoadError(
            "backend openvino needs the openvino extra (pip install 'eshybrid[openvino]'); or use backend onnx"
        ) from e
    except ModelLoadError:
        raise
    except Exception as e:  # the converter and NNCF raise many types; all mean "no OpenVINO model"
        raise ModelLoadError(f"converting {spec.transformer_path} to OpenVINO ({quantization}) failed: {e}") from e


class OpenVinoModel:
    """A compiled OpenVINO model called like the transformer: ``model(input_ids=, attention_mask=)`` returns a
    one-tuple of token vectors (a torch tensor), as :class:`OnnxModel`."""

    def __init__(self, path: Path, *, threads: int, config: Any) -> None:
        self.path = path
        self.config = config  # read by Embedder for the position limit
        self._compiled = ov_compiled(path, threads=threads)

    def __call__(self, *, input_ids: Any, attention_mask: Any) -> tuple[Any]:
        import torch

        result = self._compiled({"input_ids": input_ids.cpu().numpy(), "attention_mask": attention_mask.cpu().numpy()})
        return (torch.from_numpy(np.asarray(result[0])),)

    def to(self, device: str) -> OpenVinoModel:
        if device != "cpu":
            raise ModelLoadError("the openvino backend runs on CPU only; use backend torch on a GPU", device=device)
        return self

    def eval(self) -> OpenVinoModel:
        return self


class OnnxModel:
    """An ONNX Runtime session called like the transformer: ``model(input_ids=, attention_mask=)``.

    Returns a one-tuple of token vectors (a torch tensor), which is what ``Embedder.forward`` reads.
    """

    def __init__(self, path: Path, *, threads: int, config: Any) -> None:
        self.path = path
        self.config = config  # read by Embedder for the position limit
        self._session = cpu_session(path, threads=threads)

    def __call__(self, *, input_ids: Any, attention_mask: Any) -> tuple[Any]:
        import torch

        hidden = self._session.run(
            None, {"input_ids": input_ids.cpu().numpy(), "attention_mask": attention_mask.cpu().numpy()}
        )[0]
        return (torch.from_numpy(hidden),)

    def to(self, device: str) -> OnnxModel:
        if device != "cpu":
            raise ModelLoadError("the onnx backend runs on CPU only; use backend torch on a GPU", device=device)
        return self

    def eval(self) -> OnnxModel:
        return self


def min_cosine(a: np.ndarray, b: np.ndarray) -> float:
    """The smallest row-wise cosine between two ``[n, dims]`` arrays."""
    norms = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    return float(np.min(np.sum(a * b, axis=1) / np.maximum(norms, 1e-12)))


@dataclass(frozen=True)
class BackendChoice:
    """One candidate of ``backend=auto``: how fast it ran the sample and how close it stayed to torch fp32."""

    backend: Backend
    quantization: Quantization
    docs_per_s: float
    min_cosine: float
    passed: bool


def choose_backend(
    candidates: Sequence[tuple[Backend, Quantization, Callable[[Sequence[str]], np.ndarray]]],
    reference: Callable[[Sequence[str]], np.ndarray],
    *,
    texts: Sequence[str] = AUTO_SAMPLE_TEXTS,
    threshold: float = 0.99,
    repeats: int = 3,
) -> tuple[int, list[BackendChoice]]:
    """Time each candidate's ``encode`` on ``texts`` and check it against ``reference`` (torch fp32).

    Returns:
        The index of the fastest candidate whose minimum cosine is at least ``threshold`` (the reference
        itself should be one of them, so one always passes), and the measurements of all of them.
    """
    expected = reference(texts)
    results: list[BackendChoice] = []
    for backend, quantization, encode in candidates:
        vectors = encode(texts)  # warm-up, and the vectors that are checked
        best = float("inf")
        for _ in range(repeats):
            started = time.perf_counter()
            encode(texts)
            best = min(best, time.perf_counter() - started)
        cosine = min_cosine(vectors, expected)
        results.append(
            BackendChoice(backend, quantization, len(texts) / max(best, 1e-9), round(cosine, 5), cosine >= threshold)
        )
    passing = [i for i, r in enumerate(results) if r.passed]
    if not passing:
        raise ModelLoadError(f"no backend passed the quality check (cosine >= {threshold}): {results}")
    return max(passing, key=lambda i: results[i].docs_per_s), results
