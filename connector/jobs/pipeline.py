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

The pieces: :mod:`~connector.jobs.work` (what flows: documents' work, pages, the
protocols, the sizes), :mod:`~connector.jobs.embed_stage` (stage 2),
:mod:`~connector.jobs.write_stage` (stage 3), :mod:`~connector.jobs.checkpoints`
(ordered checkpoints); this module reads (stage 1) and runs the threads and queues.
Their public names are re-exported here.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Sequence

from connector.cluster.client import Cluster
from connector.jobs.backpressure import Backpressure
from connector.jobs.checkpoints import CheckpointTracker
from connector.jobs.embed_stage import EmbedStage
from connector.jobs.own_writes import OwnWrites
from connector.jobs.passages import PassageStep
from connector.jobs.store import JobCounts, JobStore
from connector.jobs.work import DocWork, Embedder, JobMode, Page, PageSource, PipelineOptions, _Stopped
from connector.jobs.write_stage import WriteStage

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
        self._embed = EmbedStage(
            mode=mode,
            embedder=embedder,
            passages=passages,
            options=options,
            backpressure=self.backpressure,
            stop=self._stop,
            count=self._count,
        )
        self._writer = WriteStage(
            cluster=cluster,
            mode=mode,
            options=options,
            backpressure=self.backpressure,
            own_writes=own_writes,
            embed=self._embed,
            count=self._count,
        )

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
                self._embed.announce(page)
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
                self._embed.embed_works(todo, page)
            self._put(self._write_q, page)

    # -- stage 3: write ---------------------------------------------------------------
    def _write_loop(self) -> None:
        while True:
            page = self._get(self._write_q)
            if page is None:
                return
            self._writer.write_page(page)
            if self.store is not None and page.dead_letters:
                self.store.write_dead_letters(page.dead_letters)
            self.tracker.complete(page)

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
