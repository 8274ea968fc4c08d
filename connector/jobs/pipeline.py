"""The job pipeline: read pages, embed them, write them back, checkpoint, in overlapping stages.

```
 readers (one per slice)  ──embed queue──▶  embed workers (N)  ──write queue──▶  writers (M)
   PIT / catch-up pages      (bounded)        service client       (bounded)      streaming bulk,
   text + hash verdicts                       retries, bisect                     409 redo, dead letters,
                                                                                  ordered checkpoints
```

Queues are bounded, so memory stays flat whatever the index size; a slow stage
blocks the ones before it. On 429/503 the shared :class:`Backpressure` grows a
delay that readers and embed workers wait before each request, and shrinks it
again on success.

What differs between an in-place backfill and a copy into a new index is a
:class:`JobMode` (how a hit becomes work, which bulk action writes it, what a 409
means); the pipeline itself does not know which one it runs.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol, TypeVar

from tenacity import RetryCallState, Retrying, retry_if_exception_type, stop_after_attempt, wait_random_exponential

from connector.cluster.client import Cluster
from connector.errors import (
    BulkError,
    EmbeddingOverloaded,
    EmbeddingRequestError,
    EmbeddingServiceUnavailable,
    JobError,
)
from connector.jobs.backpressure import Backpressure
from connector.jobs.bulk import BulkAction, BulkItemResult, streaming_bulk
from connector.jobs.own_writes import OwnWrites
from connector.jobs.passages import PassageStep, passages_value
from connector.jobs.store import DeadLetter, JobCounts, JobStore, SliceCheckpoint

if TYPE_CHECKING:
    from connector.jobs.settings import JobSettings

__all__ = [
    "Backpressure",
    "CheckpointTracker",
    "DocWork",
    "Embedder",
    "JobMode",
    "Page",
    "PageSource",
    "Pipeline",
    "PipelineOptions",
]

logger = logging.getLogger(__name__)

_T = TypeVar("_T")
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


class CheckpointTracker:
    """Commits pages of each slice in order and stores the slice's checkpoint.

    Pages finish out of order (several embed and write workers); a slice's cursor only
    moves past page ``n`` once pages ``0..n`` are all written, so a resumed job redoes at
    most the pages that were in flight.
    """

    def __init__(self, store: JobStore | None, checkpoints: Iterable[SliceCheckpoint]) -> None:
        self.store = store
        self._checkpoints = {cp.key: cp for cp in checkpoints}
        self._locks = {key: threading.Lock() for key in self._checkpoints}
        self._next_seq = {key: 0 for key in self._checkpoints}
        self._finished: dict[str, dict[int, Page]] = {key: {} for key in self._checkpoints}

    def checkpoint(self, key: str) -> SliceCheckpoint:
        return self._checkpoints[key]

    def complete(self, page: Page) -> None:
        key = page.slice_key
        with self._locks[key]:
            self._finished[key][page.seq] = page
            cp = self._checkpoints[key]
            advanced = False
            while self._next_seq[key] in self._finished[key]:
                done = self._finished[key].pop(self._next_seq[key])
                self._next_seq[key] += 1
                if done.restart:
                    cp.counts = JobCounts(embedded=cp.counts.embedded, reused=cp.counts.reused)
                    cp.cursor = None
                cp.counts.add(done.counts)
                if done.cursor is not None:
                    cp.cursor = done.cursor
                if done.pit_id is not None:
                    cp.pit_id = done.pit_id
                cp.done = cp.done or done.end
                advanced = True
            if advanced:
                cp.commit_seq += 1
                if self.store is not None:
                    self.store.save_checkpoint(cp)


class _Stopped(Exception):
    """Raised inside a worker when another worker failed."""


class Pipeline:
    """Runs page sources through a :class:`JobMode` with overlapping read, embed and write."""

    def __init__(
        self,
        *,
        cluster: Cluster,
        mode: JobMode,
        embedder: Embedder | None,
        store: JobStore | None,
        tracker: CheckpointTracker,
        options: PipelineOptions,
        backpressure: Backpressure | None = None,
        own_writes: OwnWrites | None = None,
        passages: PassageStep | None = None,
    ) -> None:
        self.cluster = cluster
        self.own_writes = own_writes
        self.passages = passages
        self.mode = mode
        self.embedder = embedder
        self.store = store
        self.tracker = tracker
        self.options = options
        self.backpressure = backpressure or Backpressure()
        self.live = JobCounts()
        self._live_lock = threading.Lock()
        self._stop = threading.Event()
        self._error: BaseException | None = None
        self._embed_q: queue.Queue[Page | None] = queue.Queue(maxsize=options.queue_pages)
        self._write_q: queue.Queue[Page | None] = queue.Queue(maxsize=options.queue_pages)

    # -- plumbing -------------------------------------------------------------------
    def _fail(self, err: BaseException) -> None:
        if self._error is None and not isinstance(err, _Stopped):
            self._error = err
        self._stop.set()

    def _put(self, q: queue.Queue[Page | None], item: Page | None) -> None:
        while True:
            if self._stop.is_set():
                raise _Stopped()
            try:
                q.put(item, timeout=0.2)
                return
            except queue.Full:
                continue

    def _get(self, q: queue.Queue[Page | None]) -> Page | None:
        while True:
            if self._stop.is_set():
                raise _Stopped()
            try:
                return q.get(timeout=0.2)
            except queue.Empty:
                continue

    def _count(self, **deltas: int) -> None:
        with self._live_lock:
            for name, delta in deltas.items():
                setattr(self.live, name, getattr(self.live, name) + delta)

    def snapshot(self) -> JobCounts:
        with self._live_lock:
            return JobCounts(**self.live.as_dict())

    def _thread(self, name: str, target: Callable[[], None]) -> threading.Thread:
        def body() -> None:
            try:
                target()
            except BaseException as e:  # noqa: BLE001 - handed to the main thread
                if not isinstance(e, _Stopped):
                    logger.error("%s failed: %s", name, e)
                self._fail(e)

        thread = threading.Thread(target=body, name=name, daemon=True)
        thread.start()
        return thread

    # -- stage 1: read ----------------------------------------------------------------
    def _read(self, sources: queue.Queue[PageSource]) -> None:
        while not self._stop.is_set():
            try:
                source = sources.get_nowait()
            except queue.Empty:
                return
            seq = 0
            for hits, cursor, pit_id, restarted in source.pages():
                self.backpressure.wait(self._stop)
                page = Page(
                    slice_key=source.key, seq=seq, cursor=cursor, pit_id=pit_id, end=not hits, restart=restarted
                )
                seq += 1
                prepare = getattr(self.mode, "prepare_page", None)  # optional: a page's lookups at once
                if prepare is not None and hits:
                    prepare(hits)
                for hit in hits:
                    work = self.mode.classify(hit)
                    page.counts.read += 1
                    self._tally_verdict(page, work)
                self._count(read=len(hits), skipped=page.counts.skipped, dead_lettered=page.counts.dead_lettered)
                self._put(self._embed_q, page)
                if not hits:
                    break

    def _tally_verdict(self, page: Page, work: DocWork) -> None:
        if work.verdict == "skip":
            page.counts.skipped += 1
        elif work.verdict == "dead":
            assert work.dead_letter is not None
            page.counts.dead_lettered += 1
            page.dead_letters.append(work.dead_letter)
        else:
            page.work.append(work)

    # -- stage 2: embed ---------------------------------------------------------------
    def _embed_loop(self) -> None:
        while True:
            page = self._get(self._embed_q)
            if page is None:
                return
            todo = [w for w in page.work if w.verdict == "embed"]
            if todo:
                self._embed_works(todo, page)
            self._put(self._write_q, page)

    def _embed_works(self, works: list[DocWork], page: Page) -> None:
        assert self.embedder is not None, "a job with work to embed needs an embedder"
        if self.passages is not None:
            self._embed_passages(works, page)
            return
        texts = [w.text or "" for w in works]
        # Sort by length so each service batch pads little; restore the order after.
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        results = self._embed_or_bisect([texts[i] for i in order])
        page.counts.embedded += len(texts)
        self._count(embedded=len(texts))
        for position, result in zip(order, results):
            work = works[position]
            if isinstance(result, EmbeddingRequestError):
                # An image job's errors say why themselves (``reason_code``: image_unreachable...).
                code = getattr(result, "reason_code", None)
                self.mode.mark_unembeddable(
                    work,
                    code or "embedding_rejected",
                    str(result) if code else f"the embedding service refused the text: {result}",
                )
                if work.dead_letter is not None:
                    page.dead_letters.append(work.dead_letter)
                if work.verdict == "dead":
                    page.counts.dead_lettered += 1
                    self._count(dead_lettered=1)
                continue
            work.vector = result
            work.verdict = "write"
        page.work = [w for w in page.work if w.verdict != "dead"]

    def _embed_passages(self, works: list[DocWork], page: Page) -> None:
        """Passage mode: cut each text, embed every passage, attach the nested array to its document."""
        step = self.passages
        assert step is not None
        cuts = self._with_retry(lambda: step.cut([w.text or "" for w in works], [step.prefix(w.source) for w in works]))
        flat = [p.text for passages in cuts for p in passages]
        order = sorted(range(len(flat)), key=lambda i: len(flat[i]))
        sorted_results = self._embed_or_bisect([flat[i] for i in order])
        results: list[list[float] | EmbeddingRequestError] = [[] for _ in flat]
        for position, result in zip(order, sorted_results):
            results[position] = result
        page.counts.embedded += len(works)
        self._count(embedded=len(works))
        first = 0
        for work, passages in zip(works, cuts):
            mine = results[first : first + len(passages)]
            first += len(passages)
            refused = next((r for r in mine if isinstance(r, EmbeddingRequestError)), None)
            if refused is not None or not passages:
                reason = f"the embedding service refused a passage: {refused}" if refused else "no passage to embed"
                self.mode.mark_unembeddable(work, "embedding_rejected", reason)
                if work.dead_letter is not None:
                    page.dead_letters.append(work.dead_letter)
                if work.verdict == "dead":
                    page.counts.dead_lettered += 1
                    self._count(dead_lettered=1)
                continue
            work.passages = passages_value(passages, [r for r in mine if not isinstance(r, EmbeddingRequestError)])
            work.verdict = "write"
        page.work = [w for w in page.work if w.verdict != "dead"]

    def _with_retry(self, call: Callable[[], _T]) -> _T:
        """``call()`` with the service retry policy (429/503/unreachable), backpressure included."""

        def before_sleep(state: RetryCallState) -> None:
            err = state.outcome.exception() if state.outcome else None
            logger.warning("embedding service call failed (%s); retry %s", err, state.attempt_number)
            self.backpressure.penalize(type(err).__name__)

        retrying = Retrying(
            stop=stop_after_attempt(self.options.embed_max_retries + 1),
            wait=wait_random_exponential(multiplier=0.5, max=self.options.max_backoff_s),
            retry=retry_if_exception_type((EmbeddingOverloaded, EmbeddingServiceUnavailable)),
            before_sleep=before_sleep,
            reraise=True,
        )
        for attempt in retrying:
            with attempt:
                self.backpressure.wait(self._stop)
                result = call()
        self.backpressure.relieve()
        return result

    def _embed_or_bisect(self, texts: list[str]) -> list[list[float] | EmbeddingRequestError]:
        """Embed; when the service refuses a batch (4xx), split it to find the texts it refuses."""
        try:
            vectors = self._embed_with_retry(texts)
        except EmbeddingRequestError as e:
            if len(texts) == 1:
                return [e]
            mid = len(texts) // 2
            return self._embed_or_bisect(texts[:mid]) + self._embed_or_bisect(texts[mid:])
        return list(vectors)

    def _embed_with_retry(self, texts: list[str]) -> list[list[float]]:
        assert self.embedder is not None
        embedder = self.embedder

        def before_sleep(state: RetryCallState) -> None:
            err = state.outcome.exception() if state.outcome else None
            logger.warning(
                "embedding failed (%s); retry %s in %.1fs",
                err,
                state.attempt_number,
                state.next_action.sleep if state.next_action else 0.0,
            )
            self.backpressure.penalize(type(err).__name__)

        retrying = Retrying(
            stop=stop_after_attempt(self.options.embed_max_retries + 1),
            wait=wait_random_exponential(multiplier=0.5, max=self.options.max_backoff_s),
            retry=retry_if_exception_type((EmbeddingOverloaded, EmbeddingServiceUnavailable)),
            before_sleep=before_sleep,
            reraise=True,
        )
        for attempt in retrying:
            with attempt:
                if self._stop.is_set():
                    raise _Stopped()
                self.backpressure.wait(self._stop)
                vectors = embedder.embed_documents(texts)
        self.backpressure.relieve()
        self._check_vectors(texts, vectors)
        return vectors

    def _check_vectors(self, texts: Sequence[str], vectors: Sequence[Sequence[float]]) -> None:
        if len(vectors) != len(texts):
            raise JobError(f"the embedding service returned {len(vectors)} vectors for {len(texts)} texts")
        dims = self.options.dims
        if dims is not None and any(len(v) != dims for v in vectors):
            bad = next(len(v) for v in vectors if len(v) != dims)
            raise JobError(
                f"the embedding service returned {bad}-dim vectors but the field holds {dims} dims; "
                "point --embed-url at the model the field was built for, or migrate to a new field"
            )

    # -- stage 3: write ---------------------------------------------------------------
    def _write_loop(self) -> None:
        while True:
            page = self._get(self._write_q)
            if page is None:
                return
            self._write_page(page)
            if self.store is not None and page.dead_letters:
                self.store.write_dead_letters(page.dead_letters)
            self.tracker.complete(page)

    def _write_page(self, page: Page) -> None:
        works = [w for w in page.work if w.verdict == "write"]
        while works:
            works = self._write_once(works, page)

    def _write_once(self, works: list[DocWork], page: Page) -> list[DocWork]:
        """Write works; returns the ones to write again (re-read after a 409 and re-embedded)."""
        conflicts: list[DocWork] = []
        failures: list[tuple[DocWork, BulkItemResult]] = []
        try:
            results = list(
                streaming_bulk(
                    self.cluster,
                    (self._action(w) for w in works),
                    max_docs=self.options.bulk_max_docs,
                    max_bytes=self.options.bulk_max_bytes,
                    max_retries=self.options.bulk_max_retries,
                    max_backoff_s=self.options.max_backoff_s,
                    on_backpressure=self.backpressure.penalize,
                )
            )
        except BulkError as e:
            raise JobError(f"writing to the cluster kept failing, stopping (resume with --resume): {e}") from e
        self.backpressure.relieve()
        for result in results:
            work: DocWork = result.action.ref
            if result.ok:
                self._record_written(work, page)
                if self.own_writes is not None and result.seq_no is not None:
                    meta = result.action.meta
                    self.own_writes.add(str(meta.get("_index", work.index)), str(meta["_id"]), int(result.seq_no))
            elif result.status == 409:
                conflicts.append(work)
            elif result.status == 404 and result.error_type == "document_missing_exception":
                page.counts.vanished += 1
                self._count(vanished=1)
            else:
                failures.append((work, result))
        self._handle_failures(failures, page)
        if not conflicts:
            return []
        page.counts.conflicts += len(conflicts)
        self._count(conflicts=len(conflicts))
        return self._redo(conflicts, page)

    def _action(self, work: DocWork) -> BulkAction:
        action = self.mode.to_action(work)
        return BulkAction(action.op, action.meta, action.source, ref=work)

    def _record_written(self, work: DocWork, page: Page) -> None:
        if work.reused:
            page.counts.reused += 1
            self._count(reused=1)
        if work.dead_letter is not None:
            page.counts.dead_lettered += 1
            self._count(dead_lettered=1)
        else:
            page.counts.updated += 1
            self._count(updated=1)

    def _handle_failures(self, failures: list[tuple[DocWork, BulkItemResult]], page: Page) -> None:
        if not failures:
            return
        kinds = {(r.status, r.error_type) for _, r in failures}
        if any(r.status == 429 for _, r in failures):
            raise JobError("the cluster kept answering 429 to bulk items; stopping (resume with --resume)")
        if len(failures) >= 10 and len(kinds) == 1:
            sample = failures[0][1]
            raise JobError(
                f"every write of a chunk failed the same way ({sample.error_type}: {sample.reason}); "
                "this looks like a mapping problem, not bad documents"
            )
        for work, result in failures:
            reason = f"the cluster refused the write: {result.error_type}: {result.reason}"
            self.mode.mark_unembeddable(work, "write_rejected", reason)
            self._dead_letter(work, page)

    def _dead_letter(self, work: DocWork, page: Page) -> None:
        """``work`` ends as a dead letter (and nothing is written for it)."""
        assert work.dead_letter is not None
        page.dead_letters.append(work.dead_letter)
        page.counts.dead_lettered += 1
        self._count(dead_lettered=1)

    def _redo(self, conflicts: list[DocWork], page: Page) -> list[DocWork]:
        """After a 409: let the mode re-read the documents, then embed what changed."""
        again: list[DocWork] = []
        for work in self.mode.resolve_conflicts(conflicts):
            if work.verdict == "skip":
                page.counts.skipped += 1
                self._count(skipped=1)
            elif work.verdict == "vanished":
                page.counts.vanished += 1
                self._count(vanished=1)
            elif work.verdict == "dead":
                self._dead_letter(work, page)
            elif work.attempts >= self.options.conflict_max_attempts:
                self.mode.mark_unembeddable(
                    work,
                    "conflict_retries_exhausted",
                    f"the document changed {work.attempts} times while the job tried to write it; run the job again",
                )
                self._dead_letter(work, page)
            else:
                again.append(work)
        todo = [w for w in again if w.verdict == "embed"]
        if todo:
            self._embed_works(todo, page)
        return [w for w in again if w.verdict == "write"]

    # -- run ----------------------------------------------------------------------------
    def run(self, sources: Sequence[PageSource]) -> JobCounts:
        """Run every source to its end; returns the live counts. Raises the first worker error."""
        pending: queue.Queue[PageSource] = queue.Queue()
        for source in sources:
            pending.put(source)
        readers = [
            self._thread(f"reader-{i}", lambda: self._read(pending))
            for i in range(max(1, min(self.options.read_workers, len(sources))))
        ]
        embedders = [self._thread(f"embed-{i}", self._embed_loop) for i in range(self.options.embed_workers)]
        writers = [self._thread(f"write-{i}", self._write_loop) for i in range(self.options.write_workers)]
        try:
            self._join(readers)
            for _ in embedders:
                self._put(self._embed_q, None)
            self._join(embedders)
            for _ in writers:
                self._put(self._write_q, None)
            self._join(writers)
        except _Stopped:
            pass
        except BaseException as e:
            self._fail(e)
            raise
        finally:
            self._stop_all(readers + embedders + writers)
        if self._error is not None:
            raise self._error
        return self.snapshot()

    def _join(self, threads: list[threading.Thread]) -> None:
        for thread in threads:
            while thread.is_alive():
                thread.join(timeout=0.2)
                if self._stop.is_set():
                    raise _Stopped()

    def _stop_all(self, threads: list[threading.Thread]) -> None:
        if self._error is not None or self._stop.is_set():
            self._stop.set()
            for thread in threads:
                thread.join(timeout=30)
