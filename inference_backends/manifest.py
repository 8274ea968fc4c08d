"""The self-description of an exported encoder (``encoder.json`` beside ``model.onnx`` and ``tokenizer.json``).

The embedding service writes it into the export cache folder of its onnx variant (and ``eshybrid
export-query-encoder`` does the same without a service), so that a process without torch or transformers can
embed queries exactly as the service does: same graph, same tokenizer, same prefix, pooling and normalization.
Pure data and file I/O; nothing here imports onnxruntime.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from inference_backends.onnx import CACHE_FOLDER, user_cache

__all__ = [
    "MANIFEST_FILE",
    "MANIFEST_FORMAT",
    "EncoderManifest",
    "default_places",
    "find_manifests",
    "read_manifest",
    "write_manifest",
]

MANIFEST_FILE = "encoder.json"
# Bump when a field's meaning changes; a reader refuses a format it does not know.
MANIFEST_FORMAT = 1
_POOLINGS = ("mean", "cls", "lasttoken", "max", "mean_sqrt_len")


@dataclass(frozen=True)
class EncoderManifest:
    """How the exported graph in the same folder turns a text into the service's vector."""

    model_id: str
    revision: str
    dims: int
    max_length: int
    pooling: str
    normalized: bool
    query_prefix: str
    document_prefix: str
    do_lower_case: bool
    quantization: str
    backend: str = "onnx"
    onnx_file: str = "model.onnx"
    tokenizer_file: str = "tokenizer.json"
    format: int = MANIFEST_FORMAT

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_mapping(cls, body: Mapping[str, Any]) -> EncoderManifest:
        """Validate a parsed ``encoder.json``.

        Raises:
            ValueError: a field is missing or of the wrong kind, or the format is unknown.
        """
        if body.get("format") != MANIFEST_FORMAT:
            raise ValueError(f"encoder manifest format {body.get('format')!r} is not {MANIFEST_FORMAT}; re-export it")
        try:
            manifest = cls(**{key: body[key] for key in cls.__dataclass_fields__ if key in body})
        except TypeError as e:
            raise ValueError(f"encoder manifest is incomplete: {e}") from e
        if manifest.pooling not in _POOLINGS:
            raise ValueError(f"encoder manifest pooling {manifest.pooling!r} is not one of {_POOLINGS}")
        if not (isinstance(manifest.dims, int) and manifest.dims > 0 and isinstance(manifest.max_length, int)):
            raise ValueError("encoder manifest dims and max_length must be positive integers")
        return manifest


def write_manifest(folder: Path, manifest: EncoderManifest) -> Path:
    """Write ``folder/encoder.json`` atomically (a reader never sees half a file); returns its path."""
    path = folder / MANIFEST_FILE
    handle, temporary = tempfile.mkstemp(prefix=".encoder-", suffix=".json", dir=folder)
    with os.fdopen(handle, "w", encoding="utf-8") as out:
        out.write(manifest.to_json())
    os.chmod(temporary, 0o644)  # mkstemp makes it private; other users' searches read it
    os.replace(temporary, path)
    return path


def read_manifest(folder: Path) -> EncoderManifest:
    """The manifest of an exported encoder folder.

    Raises:
        OSError: no readable ``encoder.json`` there.
        ValueError: it is not a manifest this version understands.
    """
    try:
        body = json.loads((folder / MANIFEST_FILE).read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise ValueError(f"{folder / MANIFEST_FILE} is not JSON: {e}") from e
    if not isinstance(body, Mapping):
        raise ValueError(f"{folder / MANIFEST_FILE} is not a JSON object")
    return EncoderManifest.from_mapping(body)


def find_manifests(places: Iterable[Path]) -> list[Path]:
    """Exported encoder folders at or under ``places``: a folder holding ``encoder.json`` itself, else its
    export cache (``<folder>/.eshybrid/*/``) or, for a cache root, its children; newest first."""
    found: dict[Path, float] = {}
    for place in places:
        for candidate in (place, *place.glob(f"{CACHE_FOLDER}/*"), *place.glob("*")):
            path = candidate / MANIFEST_FILE
            if path.is_file():
                found.setdefault(candidate, path.stat().st_mtime)
    return sorted(found, key=lambda folder: -found[folder])


def default_places(model_folder: Path | None) -> list[Path]:
    """Where exports are cached for ``model_folder`` (its ``.eshybrid``), then the user's cache."""
    return [p for p in (model_folder, user_cache()) if p is not None]
