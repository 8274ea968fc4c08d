"""``eshybrid export-query-encoder``: export the embedding model for the in-process query encoder.

Writes the files ``connector.services.query_encoder`` loads (``model.onnx``, ``tokenizer.json``, ``encoder.json``)
into the same export cache the embedding service's onnx backend uses. Needs ``eshybrid[serve]`` (torch exports the
graph); the search process that loads the result needs only ``eshybrid[query]``.
"""

from __future__ import annotations

import argparse
import importlib
from pathlib import Path
from typing import Any

from connector.errors import ConfigError

__all__ = ["register"]


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "export-query-encoder",
        help="export the embedding model to ONNX for in-process query vectors (no service on the search path)",
        description="Export the model the embedding service runs (same flags and ESHYBRID_EMBED_* env vars) to "
        "ONNX with its tokenizer and query settings; searches then embed queries in process when the export "
        "matches the index _meta (ESHYBRID_QUERY_ENCODER_MODEL_DIR points at another folder).",
    )
    parser.add_argument("--model", default=None, help="model folder or hub id (default: bundled all-MiniLM-L6-v2)")
    parser.add_argument("--model-id", default=None, help="name checked against the index _meta (as the service's)")
    parser.add_argument("--quantize", choices=("none", "int8"), default=None, help="the index's variant (default none)")
    parser.add_argument("--cache-dir", default=None, help="where to write (default: beside the model, else ~/.cache)")
    parser.add_argument("--online", action="store_true", help="allow downloads from the Hugging Face hub")
    parser.set_defaults(func=_export)


def _export(args: argparse.Namespace) -> int:
    from pydantic import ValidationError

    try:
        settings_module = importlib.import_module("embedding_service.settings")
        export_module = importlib.import_module("embedding_service.query_export")
        service_error = importlib.import_module("embedding_service.errors").EmbeddingServiceError
    except ImportError as e:
        raise ConfigError(
            f"exporting needs the embedding service's packages ({e}); pip install 'eshybrid[serve]'"
        ) from e
    given: dict[str, Any] = {"model": args.model, "model_id": args.model_id, "quantize": args.quantize}
    overrides = {key: value for key, value in given.items() if value is not None}
    if args.online:
        overrides["offline"] = False
    try:
        settings = settings_module.EmbeddingServiceSettings(**overrides, backend="onnx", device="cpu")
    except ValidationError as e:
        raise ConfigError(f"invalid export settings: {e}") from e
    try:
        folder = export_module.export_query_encoder(
            settings, cache_root=Path(args.cache_dir) if args.cache_dir else None
        )
    except service_error as e:
        raise ConfigError(f"export failed: {e}") from e
    print(folder)
    return 0
