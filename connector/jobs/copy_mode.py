"""How a reindex copies a document: into the new index, versioned externally with the source ``_version``.

The :class:`~connector.jobs.work.JobMode` of :mod:`connector.jobs.reindex` (the in-place
one of a backfill is :class:`connector.jobs.backfill.InPlaceMode`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from connector.cluster.client import Cluster, JsonDict
from connector.jobs.bulk import BulkAction, source_with_vector
from connector.jobs.common import BOOKKEEPING, bookkeeping, set_text, vector_is_current
from connector.jobs.store import DeadLetter
from connector.jobs.work import DocWork
from connector.texts import TextPolicy

__all__ = ["CopyMode"]


@dataclass
class CopyMode:
    """Index operations into the new index, versioned externally with the source ``_version``."""

    cluster: Cluster
    job_id: str
    target_index: str
    vector_field: str
    model_id: str | None
    policy: TextPolicy | None
    source_includes: list[str] | None = None

    def classify(self, hit: Mapping[str, Any]) -> DocWork:
        source = dict(hit.get("_source") or {})
        work = DocWork(
            doc_id=str(hit["_id"]),
            verdict="write",
            index=str(hit["_index"]),
            routing=hit.get("_routing"),
            version=hit.get("_version"),
            source=source,
        )
        if self.policy is None or not set_text(work, self.policy, self):
            return work
        if vector_is_current(
            source, vector_field=self.vector_field, text_hash=work.text_hash, model_id=self.model_id
        ) and source.get(self.vector_field):
            work.vector = source[self.vector_field]
            work.reused = True
        else:
            work.verdict = "embed"
        return work

    def mark_unembeddable(self, work: DocWork, reason_code: str, reason: str) -> None:
        """The document is still copied (without a vector); a dead letter says why."""
        work.verdict = "write"
        work.vector = None
        work.source.pop(self.vector_field, None)
        meta = work.source.get(BOOKKEEPING)
        if isinstance(meta, dict):
            meta.pop(self.vector_field, None)
        work.dead_letter = DeadLetter(
            job_id=self.job_id,
            index=work.index,
            doc_id=work.doc_id,
            reason_code=reason_code,
            reason=reason,
            vector_field=self.vector_field,
            text_excerpt=(work.text or "")[:300] or None,
        )

    def to_action(self, work: DocWork) -> BulkAction:
        meta: JsonDict = {"_index": self.target_index, "_id": work.doc_id}
        if work.version is not None:
            meta.update(version=work.version, version_type="external")
        if work.routing is not None:
            meta["routing"] = work.routing
        if work.vector is None or self.policy is None:
            return BulkAction("index", meta, work.source)
        source = dict(work.source)
        book = dict(source.get(BOOKKEEPING) or {})
        book[self.vector_field] = bookkeeping(self.model_id, work.text_hash)
        source[BOOKKEEPING] = book
        return BulkAction("index", meta, source_with_vector(source, self.vector_field, work.vector))

    def resolve_conflicts(self, works: list[DocWork]) -> list[DocWork]:
        """A 409 here means the new index already holds this version or a newer one."""
        for work in works:
            work.verdict = "skip"
        return works
