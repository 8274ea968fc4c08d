"""Pieces shared by backfill and reindex: job ids, summaries, mapping look-ups, embedder set-up."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from connector.cluster.client import Cluster, JsonDict
from connector.errors import ConfigError
from connector.jobs.settings import JobSettings
from connector.jobs.store import JobCounts
from connector.jobs.work import DocWork, Embedder, JobMode
from connector.services.embedding import EmbeddingClient
from connector.texts import TextPolicy, UnembeddableDocument, build_text, text_hash
from mappings import BOOKKEEPING_FIELD as BOOKKEEPING

__all__ = [
    "BOOKKEEPING",
    "JobSummary",
    "EmbedderInfo",
    "bookkeeping",
    "cap_text_limit",
    "concrete_index",
    "describe_embedder",
    "find_property",
    "new_job_id",
    "owned_embedder",
    "owner_name",
    "record_model_variant",
    "set_text",
    "vector_is_current",
    "vector_dims_of",
]


@dataclass
class JobSummary:
    """What a finished job did.

    ``main`` covers the main scan (every document once); ``catch_up`` the re-reads of
    documents written while the job ran. Each reconciles:
    ``read = updated + skipped + dead_lettered + vanished``.
    """

    job_id: str
    kind: str
    index: str
    status: str
    main: JobCounts
    catch_up: JobCounts = field(default_factory=JobCounts)
    catch_up_passes: int = 0
    elapsed_s: float = 0.0
    main_elapsed_s: float = 0.0
    target_index: str | None = None
    alias: str | None = None
    dead_letter_index: str | None = None
    deleted_in_target: int = 0

    @property
    def total(self) -> JobCounts:
        total = JobCounts(**self.main.as_dict())
        total.add(self.catch_up)
        return total

    @property
    def reconciles(self) -> bool:
        return self.main.reconciles() and self.catch_up.reconciles()

    @property
    def docs_per_s(self) -> float:
        return self.main.finished / self.main_elapsed_s if self.main_elapsed_s > 0 else 0.0

    def as_dict(self) -> JsonDict:
        return {
            "job_id": self.job_id,
            "kind": self.kind,
            "index": self.index,
            "status": self.status,
            "target_index": self.target_index,
            "alias": self.alias,
            "counts": self.main.as_dict(),
            "catch_up_counts": self.catch_up.as_dict(),
            "total_counts": self.total.as_dict(),
            "catch_up_passes": self.catch_up_passes,
            "elapsed_s": round(self.elapsed_s, 2),
            "main_elapsed_s": round(self.main_elapsed_s, 2),
            "rate_docs_per_s": round(self.docs_per_s, 1),
            "reconciles": self.reconciles,
            "dead_letter_index": self.dead_letter_index,
            "deleted_in_target": self.deleted_in_target,
        }

    def to_text(self) -> str:
        return json.dumps(self.as_dict(), indent=2)


@dataclass(frozen=True)
class EmbedderInfo:
    model_id: str
    dims: int | None
    max_chars_per_item: int | None = None


def describe_embedder(embedder: Embedder, *, model_id: str | None, dims: int | None) -> EmbedderInfo:
    """The model id and dims to record, from the arguments or the service's ``/info``."""
    if model_id is not None:
        return EmbedderInfo(model_id=model_id, dims=dims)
    info_fn = getattr(embedder, "info", None)
    if info_fn is None:
        raise ConfigError("pass model_id: the embedder has no info() to ask", field="model_id")
    info = info_fn()
    # A quantized service records its own id per vector (``model_id+int8``): see ``vector_model_id``.
    return EmbedderInfo(
        model_id=str(getattr(info, "vector_model_id", info.model_id)),
        dims=dims if dims is not None else int(info.dims),
        max_chars_per_item=getattr(info, "max_chars_per_item", None),
    )


@contextlib.contextmanager
def owned_embedder(embedder: Embedder | None, embed_url: str | None) -> Iterator[Embedder]:
    """``embedder``, or an ``EmbeddingClient(embed_url)`` opened for the job and closed after it."""
    if embedder is not None:
        yield embedder
        return
    if not embed_url:
        raise ConfigError("give --embed-url (or ESHYBRID_EMBED_URL) or pass an embedder", field="embed_url")
    client = EmbeddingClient(embed_url)
    try:
        yield client
    finally:
        client.close()


def cap_text_limit(settings: JobSettings, info: EmbedderInfo) -> JobSettings:
    """Lower ``max_text_chars`` to what the service accepts, so such texts get a clear dead letter."""
    limit = info.max_chars_per_item
    if limit is None or limit >= settings.max_text_chars:
        return settings
    return settings.with_overrides(max_text_chars=int(limit))


def set_text(work: DocWork, policy: TextPolicy, mode: JobMode) -> bool:
    """Build the document's text and its hash into ``work``.

    Returns:
        False when the document has no embeddable text (``mode`` then marked it).
    """
    try:
        work.text = build_text(work.source, policy)
    except UnembeddableDocument as e:
        mode.mark_unembeddable(work, e.reason_code, e.reason)
        return False
    work.text_hash = text_hash(work.text)
    return True


def bookkeeping(model_id: str | None, text_hash: str | None) -> JsonDict:
    """What :data:`BOOKKEEPING` records for one vector field."""
    return {"model_id": model_id, "text_hash": text_hash}


def vector_is_current(
    source: Mapping[str, Any], *, vector_field: str, text_hash: str | None, model_id: str | None
) -> bool:
    """The bookkeeping says the stored vector is of this text, by this model."""
    meta = (source.get(BOOKKEEPING) or {}).get(vector_field) or {}
    return bool(meta.get("text_hash") == text_hash and meta.get("model_id") == model_id)


def new_job_id(kind: str, index: str, vector_field: str) -> str:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    return f"{kind}-{index}-{vector_field}-{stamp}-{uuid.uuid4().hex[:6]}"


def owner_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def concrete_index(cluster: Cluster, name: str) -> str:
    """The one concrete index behind ``name`` (an index, or an alias of one index)."""
    body = cluster.request("GET", f"/{name}/_settings/index.uuid", ignore=(404,))
    if body.status == 404:
        raise ConfigError(f"index or alias {name!r} does not exist", index=name)
    names = sorted(body.body)
    if len(names) != 1:
        raise ConfigError(f"{name!r} resolves to {len(names)} indices ({', '.join(names)}); name one index", index=name)
    return names[0]


def find_property(mapping: Mapping[str, Any], path: str) -> JsonDict | None:
    """The mapping of a (dotted) field, or ``None``."""
    properties: Any = mapping.get("properties") or {}
    if path in properties:
        found: JsonDict = properties[path]
        return found
    node: Any = None
    for part in path.split("."):
        node = properties.get(part) if isinstance(properties, Mapping) else None
        if node is None:
            return None
        properties = node.get("properties") or {}
    return node


def vector_dims_of(field_mapping: Mapping[str, Any]) -> int | None:
    """``dims`` (dense_vector) or ``dimension`` (knn_vector) of a vector field mapping."""
    value = field_mapping.get("dims", field_mapping.get("dimension"))
    return int(value) if value is not None else None


def record_model_variant(cluster: Cluster, index: str, vector_field: str, embedder: Embedder | None) -> JsonDict | None:
    """Write the service's ``model_quantization`` and ``model_backend`` into ``_meta.eshybrid.vector_fields.<field>``
    of ``index`` where they are missing, so ``check_compatible`` can compare a later service with them.

    Does nothing when the embedder has no ``/info`` (an in-process embedder), when the field has no ``_meta``
    entry, or when both keys are recorded already (a recorded value is never changed here: a different
    variant re-embeds, and ``check_compatible`` warns). Returns what was added, else None.
    """
    info_fn = getattr(embedder, "info", None)
    if info_fn is None:
        return None
    mapping = cluster.get_mapping(index)
    meta = dict(mapping.get("_meta") or {})
    ours = dict(meta.get("eshybrid") or {})
    fields = dict(ours.get("vector_fields") or {})
    entry = fields.get(vector_field)
    if not isinstance(entry, Mapping):
        return None
    info = info_fn()
    variant = {
        "model_quantization": str(getattr(info, "quantization", None) or "none"),
        "model_backend": str(getattr(info, "backend", None) or "torch"),
    }
    added = {key: value for key, value in variant.items() if key not in entry}
    if not added:
        return None
    fields[vector_field] = {**entry, **added}
    meta["eshybrid"] = {**ours, "vector_fields": fields}
    cluster.put_mapping(index, {"_meta": meta})  # PUT _mapping replaces _meta: every other key is kept above
    return added
