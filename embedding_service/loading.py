"""Load the embedder a settings object asks for, including ``backend=auto`` (measured at startup)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from embedding_service.backends import calibration_texts, choose_backend
from embedding_service.errors import ModelLoadError
from embedding_service.model import Embedder
from embedding_service.model_spec import ModelSpec
from embedding_service.query_export import write_query_encoder
from embedding_service.settings import Backend, EmbeddingServiceSettings, Quantization

__all__ = ["load_embedder", "auto_candidates"]

logger = logging.getLogger(__name__)


def auto_candidates(quantize: Quantization | None, *, openvino: bool = False) -> list[tuple[Backend, Quantization]]:
    """What ``backend=auto`` tries on CPU: torch fp32, onnx fp32, and onnx int8 unless ``quantize`` is none; with
    ``openvino`` (the extra is installed) also openvino static int8 (unless none)."""
    found: list[tuple[Backend, Quantization]] = [("torch", "none"), ("onnx", "none")]
    if quantize != "none":
        found.append(("onnx", "int8"))
        if openvino:
            found.append(("openvino", "int8"))
    return found


def load_embedder(spec: ModelSpec, settings: EmbeddingServiceSettings, *, threads: int) -> Embedder:
    """The embedder for ``settings``: its backend and quantization, or the one ``auto`` measures best.

    Raises:
        ModelLoadError: the model cannot be loaded or exported.
    """
    from inference_backends import openvino_available

    cache_root = Path(settings.backend_cache_dir) if settings.backend_cache_dir else None
    # Read only where an openvino int8 may be built, so a bad file never stops another backend.
    calibration = calibration_texts(settings.calibration_file) if settings.backend in ("openvino", "auto") else None

    def load(backend: Backend, quantization: Quantization) -> Embedder:
        embedder = Embedder.load(
            spec,
            device=settings.device,
            dtype=settings.dtype,
            trust_remote_code=settings.trust_remote_code,
            backend=backend,
            quantization=quantization,
            threads=threads,
            cache_root=cache_root,
            calibration=calibration,
        )
        if backend == "onnx":
            _leave_query_encoder(embedder)
        return embedder

    if settings.backend != "auto":
        return load(settings.backend, settings.quantize or "none")
    reference = load("torch", "none")
    if reference.device != "cpu":
        logger.info("backend auto: torch on %s (%s)", reference.device, reference.dtype)
        return reference
    loaded: list[Embedder] = [reference]
    for backend, quantization in auto_candidates(settings.quantize, openvino=openvino_available())[1:]:
        loaded.append(load(backend, quantization))

    def encoder(embedder: Embedder) -> Callable[[Sequence[str]], np.ndarray]:
        def encode(texts: Sequence[str]) -> np.ndarray:
            return embedder.encode(texts, max_rows=16, max_batch_tokens=4096)

        return encode

    best, results = choose_backend(
        [(e.backend, e.quantization, encoder(e)) for e in loaded],
        encoder(reference),
        threshold=settings.auto_min_cosine,
    )
    logger.info(
        "backend auto chose %s/%s: %s",
        loaded[best].backend,
        loaded[best].quantization,
        "; ".join(
            f"{r.backend}/{r.quantization} {r.docs_per_s:.1f} texts/s min_cos={r.min_cosine:.4f}"
            f"{'' if r.passed else ' (failed)'}"
            for r in results
        ),
    )
    return loaded[best]


def _leave_query_encoder(embedder: Embedder) -> None:
    """Make the onnx export loadable by the in-process query encoder too (best effort: the service runs anyway)."""
    try:
        write_query_encoder(embedder)
    except (OSError, ModelLoadError) as e:
        logger.warning("the onnx export is not usable by the in-process query encoder: %s", e)
