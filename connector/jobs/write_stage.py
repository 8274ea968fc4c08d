"""The pipeline's write stage: streaming bulk, 409 redo, refused writes as dead letters.

A 409 (the document changed since it was read) sends the work back to the
:class:`~connector.jobs.work.JobMode` to re-read and re-classify, then to the embed
stage if its text changed; after ``conflict_max_attempts`` it becomes a dead letter.
Item 429s are retried by :func:`~connector.jobs.bulk.streaming_bulk`; what still fails
stops the job at the chunk boundary.
"""

from __future__ import annotations

from collections.abc import Callable

from connector.cluster.client import Cluster
from connector.errors import BulkError, JobError
from connector.jobs.backpressure import Backpressure
from connector.jobs.bulk import BulkAction, BulkItemResult, streaming_bulk
from connector.jobs.embed_stage import EmbedStage
from connector.jobs.own_writes import OwnWrites
from connector.jobs.work import DocWork, JobMode, Page, PipelineOptions

__all__ = ["WriteStage"]


class WriteStage:
    """Stage 3 of :class:`connector.jobs.pipeline.Pipeline`; shares its backpressure and live counts."""

    def __init__(
        self,
        *,
        cluster: Cluster,
        mode: JobMode,
        options: PipelineOptions,
        backpressure: Backpressure,
        own_writes: OwnWrites | None,
        embed: EmbedStage,
        count: Callable[..., None],
    ) -> None:
        self.cluster = cluster
        self.mode = mode
        self.options = options
        self.backpressure = backpressure
        self.own_writes = own_writes
        self._embed = embed
        self._count = count

    def write_page(self, page: Page) -> None:
        """Write a page's works; after a 409 the mode re-reads them and they are written again."""
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
            self._embed.embed_works(todo, page)
        return [w for w in again if w.verdict == "write"]
