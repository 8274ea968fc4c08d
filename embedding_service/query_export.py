"""Leave an onnx embedder's export ready for the in-process query encoder (``connector.services.query_encoder``).

Beside the cached ``model.onnx`` of a variant go the tokenizer the service uses (``tokenizer.json``, saved from
the loaded fast tokenizer, so both tokenize alike) and ``encoder.json`` (:class:`inference_backends.EncoderManifest`:
prefix, lower-casing, truncation, pooling, normalization, model id and quantization). The service does this when it
loads an onnx backend; :func:`export_query_encoder` does it without a service (``eshybrid export-query-encoder``).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from embedding_service.errors import ModelLoadError
from embedding_service.model import Embedder
from embedding_service.settings import EmbeddingServiceSettings
from inference_backends import MANIFEST_FILE, EncoderManifest, read_manifest, write_manifest

__all__ = ["export_query_encoder", "write_query_encoder"]

logger = logging.getLogger(__name__)


def write_query_encoder(embedder: Embedder) -> Path:
    """Write ``tokenizer.json`` and ``encoder.json`` beside the embedder's ``model.onnx``; returns that folder.

    Raises:
        ModelLoadError: the embedder is not an onnx one, or its tokenizer is not a fast (Rust) one.
        OSError: the folder is not writable.
    """
    onnx_path, tokenizer = embedder.onnx_path, embedder.fast_tokenizer
    if onnx_path is None:
        raise ModelLoadError("only an onnx embedder can be exported for the query encoder; load it with backend onnx")
    if tokenizer is None:
        raise ModelLoadError(
            f"{embedder.spec.model_id} has no fast tokenizer (tokenizer.json); the query encoder needs one",
            path=str(embedder.spec.transformer_path),
        )
    spec, folder = embedder.spec, onnx_path.parent
    manifest = EncoderManifest(
        model_id=spec.model_id,
        revision=spec.revision,
        dims=embedder.dims,
        max_length=embedder.max_length,
        pooling=spec.pooling,
        normalized=spec.normalized,
        query_prefix=spec.query_prefix,
        document_prefix=spec.document_prefix,
        do_lower_case=spec.do_lower_case,
        quantization=embedder.quantization,
        onnx_file=onnx_path.name,
    )
    if (folder / MANIFEST_FILE).is_file() and (folder / manifest.tokenizer_file).is_file():
        try:
            if read_manifest(folder) == manifest:
                return folder
        except (OSError, ValueError):
            pass  # unreadable or older: rewritten below
    temporary = folder / f".{manifest.tokenizer_file}.{os.getpid()}"
    tokenizer.save(str(temporary))
    os.replace(temporary, folder / manifest.tokenizer_file)
    write_manifest(folder, manifest)  # last: its presence says the folder is complete
    logger.info("query encoder files written to %s", folder)
    return folder


def export_query_encoder(settings: EmbeddingServiceSettings, *, cache_root: Path | None = None) -> Path:
    """Export the settings' model (the onnx variant of ``settings.quantize``, default none) for the query encoder.

    The same export the service's onnx backend runs (and caches: a later service or call reuses it).

    Returns:
        The folder holding ``model.onnx``, ``tokenizer.json`` and ``encoder.json``.

    Raises:
        ModelLoadError: the model cannot be loaded or exported.
    """
    from embedding_service.model_spec import build_model_spec

    root = cache_root or (Path(settings.backend_cache_dir) if settings.backend_cache_dir else None)
    embedder = Embedder.load(
        build_model_spec(settings),
        device="cpu",
        dtype="float32",
        trust_remote_code=settings.trust_remote_code,
        backend="onnx",
        quantization=settings.quantize or "none",
        threads=1,
        cache_root=root,
    )
    try:
        return write_query_encoder(embedder)
    except OSError as e:
        raise ModelLoadError(f"cannot write the query encoder files: {e}; pass a writable --cache-dir") from e
