"""What flows through the job pipeline: a document's work, a page of them, and the pipeline's sizes.

Also the two protocols a job plugs in (:class:`PageSource`: where pages come from;
:class:`JobMode`: how a hit becomes work and which bulk action writes it) and the
:class:`Embedder` the embed stage calls. Pure data and protocols: no I/O here.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol

from connector.jobs.bulk import BulkAction
from connector.jobs.store import DeadLetter, JobCounts

if TYPE_CHECKING:
    from connector.jobs.settings import JobSettings

__all__ = ["DocWork", "Embedder", "JobMode", "Page", "PageSource", "PipelineOptions", "Verdict"]

Verdict = Literal["skip", "dead", "embed", "write", "vanished"]


class Embedder(Protocol):
    """What the pipeline needs from the embedding service client."""

    def embed_documents(self, texts: Sequence[str]) -> list[list[float]]: ...


@dataclass
class DocWork:
    """One document on its way through the pipeline.

    ``verdict``: ``skip`` (unchanged), ``dead`` (dead-letter, nothing written),
    ``embed`` (embed ``text`` then write), ``write`` (write without embedding: a
    reused vector, a copy-only job, or a copy of an unembeddable document),
    ``vanished`` (deleted by the application while the job ran).
    """

    doc_id: str
    verdict: Verdict
    index: str
    routing: str | None = None
    seq_no: int | None = None
    primary_term: int | None = None
    version: int | None = None
    source: dict[str, Any] = field(default_factory=dict)
    text: str | None = None
    text_hash: str | None = None
    vector: list[float] | None = None
    # Passage mode: the nested array to write instead of ``vector`` (``connector.jobs.passages``).
    passages: list[dict[str, Any]] | None = None
    dead_letter: DeadLetter | None = None
    attempts: int = 0
    reused: bool = False


@dataclass
class Page:
    """One page of hits of one slice; ``cursor`` is the sort value after it.

    ``end`` marks the last (empty) page of a slice; ``restart`` says the slice started
    over from a new point in time, so its counts start over too.
    """

    slice_key: str
    seq: int
    cursor: list[Any] | None
    work: list[DocWork] = field(default_factory=list)
    counts: JobCounts = field(default_factory=JobCounts)
    dead_letters: list[DeadLetter] = field(default_factory=list)
    end: bool = False
    restart: bool = False
    pit_id: str | None = None


class PageSource(Protocol):
    """Yields the raw pages of one slice: ``(hits, cursor_after, pit_id, restarted)``; ``key`` names it."""

    key: str

    def pages(self) -> Iterator[tuple[list[dict[str, Any]], list[Any] | None, str | None, bool]]: ...


class JobMode(Protocol):
    """What an in-place backfill and a copy into a new index do differently."""

    @property
    def source_includes(self) -> list[str] | None:
        """The ``_source`` fields a page needs (``None``: the whole source)."""
        ...

    def classify(self, hit: dict[str, Any]) -> DocWork: ...

    def to_action(self, work: DocWork) -> BulkAction: ...

    def mark_unembeddable(self, work: DocWork, reason_code: str, reason: str) -> None:
        """Attach a dead letter to ``work`` and set its verdict (``dead``, or ``write`` without a vector)."""
        ...

    def resolve_conflicts(self, works: list[DocWork]) -> list[DocWork]:
        """After a 409: the works again, re-read and re-classified, ``attempts`` increased."""
        ...


@dataclass(frozen=True)
class PipelineOptions:
    """Sizes of the pipeline (see :class:`connector.jobs.settings.JobSettings` for the defaults)."""

    embed_workers: int = 4
    write_workers: int = 2
    read_workers: int = 4
    queue_pages: int = 4
    bulk_max_docs: int = 500
    bulk_max_bytes: int = 8 * 1024 * 1024
    bulk_max_retries: int = 8
    embed_max_retries: int = 8
    conflict_max_attempts: int = 5
    max_backoff_s: float = 30.0
    dims: int | None = None

    @classmethod
    def from_settings(cls, s: JobSettings, *, dims: int | None, read_workers: int | None = None) -> PipelineOptions:
        """The sizes a job's settings give; ``read_workers`` overrides theirs (a Ray task reads one slice)."""
        return cls(
            embed_workers=s.embed_workers,
            write_workers=s.write_workers,
            read_workers=s.read_workers if read_workers is None else read_workers,
            queue_pages=s.queue_pages,
            bulk_max_docs=s.bulk_max_docs,
            bulk_max_bytes=s.bulk_max_bytes,
            bulk_max_retries=s.bulk_max_retries,
            embed_max_retries=s.embed_max_retries,
            conflict_max_attempts=s.conflict_max_attempts,
            max_backoff_s=s.max_backoff_s,
            dims=dims,
        )


class _Stopped(Exception):
    """Raised inside a worker when another worker failed."""
