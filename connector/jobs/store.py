"""Job documents, slice checkpoints and dead letters, kept as ordinary indices in the cluster.

- ``eshybrid-jobs``: one ``type: job`` document per job (status, counts, rate, errors,
  started/finished; what Kibana / Dashboards show) and one ``type: checkpoint`` document
  per slice (cursor, point-in-time id, counts) so ``--resume`` continues a killed job.
- ``eshybrid-dead-letters``: one document per document that could not be embedded or
  written, with a reason code and a readable reason.

The names have no leading dot: OpenSearch and Elasticsearch reserve dot-prefixed
indices for system use.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, datetime
from typing import Any

from connector.cluster.client import Cluster, JsonDict
from connector.errors import ClusterApiError
from connector.jobs.bulk import BulkAction, streaming_bulk
from mappings.system import dead_letter_index_body, jobs_index_body

__all__ = [
    "DEFAULT_DEAD_LETTER_INDEX",
    "DEFAULT_JOBS_INDEX",
    "DeadLetter",
    "JobCounts",
    "JobStore",
    "SliceCheckpoint",
    "jobs_index_body",
    "dead_letter_index_body",
    "now_iso",
    "sum_counts",
]

logger = logging.getLogger(__name__)

DEFAULT_JOBS_INDEX = "eshybrid-jobs"
DEFAULT_DEAD_LETTER_INDEX = "eshybrid-dead-letters"


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


@dataclass
class JobCounts:
    """What a job (or one slice of it) did. ``read = updated + skipped + dead_lettered + vanished``.

    Attributes:
        read: documents read from the source.
        updated: documents written (a vector added in place, or copied into the new index).
        skipped: unchanged documents (text hash and model match), or already copied.
        dead_lettered: documents sent to the dead-letter index.
        vanished: documents deleted by the application while the job ran.
        embedded: texts sent to the embedding service (a re-embedded conflict counts twice).
        reused: reindex only: vectors copied from the source instead of re-embedded.
        conflicts: writes refused with 409 because the application changed the document.
    """

    read: int = 0
    updated: int = 0
    skipped: int = 0
    dead_lettered: int = 0
    vanished: int = 0
    embedded: int = 0
    reused: int = 0
    conflicts: int = 0

    def add(self, other: JobCounts) -> None:
        for f in fields(self):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))

    @property
    def finished(self) -> int:
        """Documents the job is done with: written, skipped, dead-lettered or vanished (progress counts these)."""
        return self.updated + self.skipped + self.dead_lettered + self.vanished

    def reconciles(self) -> bool:
        return self.read == self.finished

    def as_dict(self) -> dict[str, int]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> JobCounts:
        data = data or {}
        return cls(**{f.name: int(data.get(f.name, 0)) for f in fields(cls)})


@dataclass
class SliceCheckpoint:
    """Where one slice of a job stands: everything up to ``cursor`` is done.

    ``key`` names the slice (``main-3``, ``catchup1-shard-0``); ``cursor`` is the last
    ``sort`` value of the last fully written page (``None``: start from the beginning).
    """

    job_id: str
    key: str
    pass_name: str
    slice_id: int
    max_slices: int
    cursor: list[Any] | None = None
    pit_id: str | None = None
    counts: JobCounts = field(default_factory=JobCounts)
    done: bool = False
    commit_seq: int = 0
    shard: int | None = None
    after_seq_no: int | None = None
    upto_seq_no: int | None = None

    @property
    def doc_id(self) -> str:
        return f"{self.job_id}:checkpoint:{self.key}"

    def to_doc(self) -> JsonDict:
        return {
            "type": "checkpoint",
            "job_id": self.job_id,
            "slice": self.key,
            "pass": self.pass_name,
            "slice_id": self.slice_id,
            "max_slices": self.max_slices,
            # search_after values mix types (numbers, strings): kept as JSON text.
            "cursor": json.dumps(self.cursor) if self.cursor is not None else None,
            "pit_id": self.pit_id,
            "counts": self.counts.as_dict(),
            "done": self.done,
            "commit_seq": self.commit_seq,
            "shard": self.shard,
            "after_seq_no": self.after_seq_no,
            "upto_seq_no": self.upto_seq_no,
            "updated_at": now_iso(),
        }

    @classmethod
    def from_doc(cls, doc: Mapping[str, Any]) -> SliceCheckpoint:
        cursor = doc.get("cursor")
        return cls(
            job_id=str(doc["job_id"]),
            key=str(doc["slice"]),
            pass_name=str(doc.get("pass", "main")),
            slice_id=int(doc.get("slice_id", 0)),
            max_slices=int(doc.get("max_slices", 1)),
            cursor=json.loads(cursor) if cursor else None,
            pit_id=doc.get("pit_id"),
            counts=JobCounts.from_dict(doc.get("counts")),
            done=bool(doc.get("done", False)),
            commit_seq=int(doc.get("commit_seq", 0)),
            shard=doc.get("shard"),
            after_seq_no=doc.get("after_seq_no"),
            upto_seq_no=doc.get("upto_seq_no"),
        )


def sum_counts(checkpoints: Iterable[SliceCheckpoint]) -> JobCounts:
    """The counts of the given slices added up."""
    total = JobCounts()
    for cp in checkpoints:
        total.add(cp.counts)
    return total


@dataclass(frozen=True)
class DeadLetter:
    """A document the job could not embed or write, and why."""

    job_id: str
    index: str
    doc_id: str
    reason_code: str
    reason: str
    vector_field: str
    text_excerpt: str | None = None

    def to_doc(self) -> JsonDict:
        excerpt = self.text_excerpt
        if excerpt is not None:
            # Keep the excerpt storable even when the text itself was invalid UTF-8.
            excerpt = excerpt[:300].encode("utf-8", "backslashreplace").decode("utf-8")
        return {
            "job_id": self.job_id,
            "index": self.index,
            "doc_id": self.doc_id,
            "vector_field": self.vector_field,
            "reason_code": self.reason_code,
            "reason": self.reason,
            "text_excerpt": excerpt,
            "at": now_iso(),
        }

    @property
    def letter_id(self) -> str:
        # One letter per job and document: a resumed job does not duplicate letters.
        return f"{self.job_id}:{self.index}:{self.doc_id}"


class JobStore:
    """Reads and writes job documents, checkpoints and dead letters in one cluster."""

    def __init__(
        self,
        cluster: Cluster,
        *,
        jobs_index: str = DEFAULT_JOBS_INDEX,
        dead_letter_index: str = DEFAULT_DEAD_LETTER_INDEX,
    ) -> None:
        self.cluster = cluster
        self.jobs_index = jobs_index
        self.dead_letter_index = dead_letter_index

    def ensure_indices(self) -> None:
        """Create the jobs and dead-letter indices when missing (racing creators are fine)."""
        for name, body in ((self.jobs_index, jobs_index_body()), (self.dead_letter_index, dead_letter_index_body())):
            if self.cluster.index_exists(name):
                continue
            try:
                self.cluster.create_index(name, body)
            except ClusterApiError as e:
                if e.error_type != "resource_already_exists_exception":
                    raise

    # -- job documents ------------------------------------------------------------
    def put_job(self, job_id: str, doc: Mapping[str, Any]) -> None:
        self.cluster.request("PUT", f"/{self.jobs_index}/_doc/{job_id}", body={"type": "job", "job_id": job_id, **doc})

    def update_job(self, job_id: str, changes: Mapping[str, Any]) -> None:
        body = {"doc": {**changes, "updated_at": now_iso()}}
        self.cluster.request("POST", f"/{self.jobs_index}/_update/{job_id}", body=body, params={"retry_on_conflict": 3})

    def get_job(self, job_id: str) -> JsonDict | None:
        result = self.cluster.request("GET", f"/{self.jobs_index}/_doc/{job_id}", ignore=(404,))
        if result.status == 404 or not result.body.get("found"):
            return None
        source: JsonDict = result.body["_source"]
        return source

    def find_resumable(self, *, kind: str, index: str, vector_field: str) -> JsonDict | None:
        """The latest job of this kind on this index/field that did not complete."""
        if not self.cluster.index_exists(self.jobs_index):
            return None
        self.cluster.refresh(self.jobs_index)
        body = {
            "size": 1,
            "query": {
                "bool": {
                    "filter": [
                        {"term": {"type": "job"}},
                        {"term": {"kind": kind}},
                        {"term": {"index": index}},
                        {"term": {"vector_field": vector_field}},
                    ],
                    "must_not": [{"term": {"status": "completed"}}],
                }
            },
            "sort": [{"started_at": "desc"}],
        }
        hits = self.cluster.search(self.jobs_index, body)["hits"]["hits"]
        return hits[0]["_source"] if hits else None

    # -- checkpoints ----------------------------------------------------------------
    def save_checkpoint(self, checkpoint: SliceCheckpoint) -> None:
        """Store a checkpoint; an older ``commit_seq`` never overwrites a newer one."""
        self.cluster.request(
            "PUT",
            f"/{self.jobs_index}/_doc/{checkpoint.doc_id}",
            body=checkpoint.to_doc(),
            params={"version": checkpoint.commit_seq, "version_type": "external_gte"},
            ignore=(409,),
        )

    def load_checkpoints(self, job_id: str) -> dict[str, SliceCheckpoint]:
        self.cluster.refresh(self.jobs_index)
        body = {
            "size": 10_000,
            "query": {"bool": {"filter": [{"term": {"type": "checkpoint"}}, {"term": {"job_id": job_id}}]}},
        }
        hits = self.cluster.search(self.jobs_index, body)["hits"]["hits"]
        checkpoints = [SliceCheckpoint.from_doc(h["_source"]) for h in hits]
        return {cp.key: cp for cp in checkpoints}

    # -- dead letters ---------------------------------------------------------------
    def write_dead_letters(self, letters: Sequence[DeadLetter]) -> None:
        if not letters:
            return
        actions = [
            BulkAction("index", {"_index": self.dead_letter_index, "_id": letter.letter_id}, letter.to_doc())
            for letter in letters
        ]
        failed = [r for r in streaming_bulk(self.cluster, actions) if not r.ok]
        if failed:
            logger.error(
                "could not store %s dead letters, first: %s %s", len(failed), failed[0].error_type, failed[0].reason
            )

    def dead_letters(self, job_id: str, *, size: int = 1000) -> list[JsonDict]:
        self.cluster.refresh(self.dead_letter_index)
        body = {"size": size, "query": {"term": {"job_id": job_id}}, "sort": [{"doc_id": "asc"}]}
        return [h["_source"] for h in self.cluster.search(self.dead_letter_index, body)["hits"]["hits"]]
