"""What backfill and reindex jobs share: job document, resume, the main scan, catch-up passes.

A job scans one concrete index (``scan_index``) with a sliced point in time, then
catches up with the writes made during the scan (see :mod:`connector.jobs.sources`).
Subclasses say what a page becomes (:meth:`JobRunner.mode`) and add their own phases.
The job document and resume live in :mod:`connector.jobs.job_document`, the catch-up
passes in :mod:`connector.jobs.catch_up`; :class:`JobRunner` calls them from its methods.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from connector.cluster.client import Cluster, JsonDict
from connector.cluster.detect import ClusterLike, as_cluster
from connector.errors import ConfigError, JobError
from connector.jobs import catch_up, job_document
from connector.jobs._ray import run_on_ray
from connector.jobs.common import JobSummary
from connector.jobs.dialect import PitDialect, dialect_for
from connector.jobs.job_document import ScanState
from connector.jobs.own_writes import OwnWrites
from connector.jobs.passages import PassageStep
from connector.jobs.pipeline import (
    Backpressure,
    CheckpointTracker,
    Embedder,
    JobMode,
    PageSource,
    Pipeline,
    PipelineOptions,
)
from connector.jobs.progress import JobMonitor
from connector.jobs.settings import ClusterSpec, JobSettings
from connector.jobs.slices import PassageCut, SliceTask, run_slice_task
from connector.jobs.sources import PitSliceSource
from connector.jobs.store import JobCounts, JobStore, SliceCheckpoint, now_iso, sum_counts

__all__ = ["JobRunner", "ScanState"]

logger = logging.getLogger(__name__)


class JobRunner:
    """Runs one job (:meth:`run`).

    Subclasses set ``kind`` and implement :meth:`start`, :meth:`mode_factory`, :meth:`params`,
    :meth:`run_later_phases` and :meth:`summarize`.

    With ``ray_address``, the slices of the main scan run as Ray tasks (:mod:`connector.jobs.slices`
    on :func:`connector.jobs._ray.run_on_ray`); each task reaches the cluster through
    ``cluster_spec`` and the embedding service through ``embed_url``.
    """

    kind = "job"

    def __init__(
        self,
        cluster: ClusterLike,
        *,
        settings: JobSettings,
        label_index: str,
        vector_field: str,
        slices: int,
        job_id: str | None,
        resume: bool,
        catch_up: bool,
        show_progress: bool | None,
        embedder: Embedder | None,
        dims: int | None,
        ray_address: str | None = None,
        embed_url: str | None = None,
        cluster_spec: ClusterSpec | None = None,
    ) -> None:
        self.cluster = as_cluster(cluster)  # ours, or the app's official client wrapped
        self.settings = settings
        self.label_index = label_index
        self.vector_field = vector_field
        self.slices = slices
        self.requested_job_id = job_id
        self.resume = resume
        self.catch_up = catch_up
        self.show_progress = show_progress
        self.embedder = embedder
        self.dims = dims
        self.ray_address = ray_address
        self.embed_url = embed_url
        self.cluster_spec = cluster_spec
        # Passage mode (issue 17): set by the job before it runs; None writes whole-document vectors.
        self.passages: PassageStep | None = None
        self.store = JobStore(
            self.cluster, jobs_index=settings.jobs_index, dead_letter_index=settings.dead_letter_index
        )
        self.dialect: PitDialect = dialect_for(self.cluster)
        self.backpressure = Backpressure()
        self.job_id = ""
        self.state: ScanState | None = None
        self.checkpoints: dict[str, SliceCheckpoint] = {}
        self.started = time.monotonic()
        # A job that writes into the index it scans (backfill) sets this: its catch-up then skips what it
        # wrote itself (connector.jobs.own_writes).
        self.own_writes: OwnWrites | None = None
        self.catch_up_skipped_own = 0
        # Slices resubmitted because their Ray worker or node died (one entry per resubmission).
        self.ray_resubmitted: list[str] = []
        # What builds a Ray task's embedder (must pickle); None: an EmbeddingClient of embed_url.
        self.task_embedder: Callable[[], Embedder] | None = None

    # -- to implement -----------------------------------------------------------------
    def start(self) -> None:
        """Resume the job (:meth:`find_existing`, :meth:`resume_from`) or start a new one (:meth:`start_new`)."""
        raise NotImplementedError

    def mode_factory(self) -> Callable[[Cluster], JobMode]:
        """What builds this job's mode on a connection; must pickle (a Ray task builds it on its own)."""
        raise NotImplementedError

    def task_mode_factory(self) -> Callable[[Cluster], JobMode]:
        """What builds this job's mode in a Ray task (default :meth:`mode_factory`); must pickle."""
        return self.mode_factory()

    def mode(self) -> JobMode:
        """This job's mode on this process's connection."""
        return self.mode_factory()(self.cluster)

    def params(self) -> JsonDict:
        raise NotImplementedError

    def run_later_phases(self, main: JobCounts) -> None:
        """What follows the main scan (catch-up, swap...), once its point in time is closed."""
        raise NotImplementedError

    def summarize(self, main: JobCounts, *, main_elapsed_s: float) -> JobSummary:
        raise NotImplementedError

    # -- the whole job ------------------------------------------------------------------
    def run(self) -> JobSummary:
        """Start or resume, run the main scan and the later phases, record the summary as ``done``.

        A failure is recorded in the job document (``failed``, or ``interrupted``) and re-raised.
        """
        self.start()
        assert self.state is not None
        try:
            started = time.monotonic()
            main = self.run_main()
            main_elapsed_s = time.monotonic() - started
            self.close_pit()
            self.run_later_phases(main)
        except BaseException as e:
            self.record_failure(e)
            raise
        summary = self.summarize(main, main_elapsed_s=main_elapsed_s)
        self.state.phase = "done"
        self.save_state(**summary.as_dict(), phase="done", finished_at=now_iso())
        return summary

    # -- job document and resume ------------------------------------------------------
    def find_existing(self) -> JsonDict | None:
        """The job to resume (``--resume``), or ``None`` to start a new one."""
        return job_document.find_existing(self)

    def start_new(self, scan_index: str, doc: Mapping[str, Any], extra: Mapping[str, Any] | None = None) -> None:
        """Take the high-water marks, open the point in time, write the job document."""
        job_document.start_new(self, scan_index, doc, extra)

    def resume_from(self, job: Mapping[str, Any]) -> None:
        """Continue ``job`` (its stored options must match this run's)."""
        job_document.resume_from(self, job)

    def save_state(self, **changes: Any) -> None:
        assert self.state is not None
        self.store.update_job(self.job_id, {"state": self.state.to_doc(), **changes})

    def record_failure(self, err: BaseException) -> None:
        """Record ``err`` in the job document (``failed``, or ``interrupted``)."""
        job_document.record_failure(self, err)

    # -- pipeline ---------------------------------------------------------------------
    def options(self) -> PipelineOptions:
        return PipelineOptions.from_settings(self.settings, dims=self.dims)

    def run_sources(
        self, checkpoints: list[SliceCheckpoint], sources: Sequence[PageSource], label: str, total: int | None = None
    ) -> JobCounts:
        base = sum_counts(checkpoints)
        tracker = CheckpointTracker(self.store, checkpoints)
        pipeline = Pipeline(
            cluster=self.cluster,
            mode=self.mode(),
            embedder=self.embedder,
            store=self.store,
            tracker=tracker,
            options=self.options(),
            backpressure=self.backpressure,
            own_writes=self.own_writes,
            passages=self.passages,
        )
        with JobMonitor(
            label=f"{self.kind} {self.label_index} ({label})",
            total=total,
            counts=pipeline.snapshot,
            store=self.store,
            job_id=self.job_id,
            base=base,
            show_bar=self.show_progress,
            progress_interval_s=self.settings.progress_interval_s,
            job_doc_interval_s=self.settings.job_doc_interval_s,
        ):
            pipeline.run(sources)
        return sum_counts(checkpoints)

    # -- main scan --------------------------------------------------------------------
    def main_checkpoints(self) -> list[SliceCheckpoint]:
        assert self.state is not None
        cps = []
        for i in range(self.slices):
            key = f"main-{i}"
            cp = self.checkpoints.get(key) or SliceCheckpoint(
                job_id=self.job_id,
                key=key,
                pass_name="main",
                slice_id=i,
                max_slices=self.slices,
                pit_id=self.state.pit_id,
            )
            self.checkpoints[key] = cp
            cps.append(cp)
        return cps

    def pit_source(self, cp: SliceCheckpoint) -> PitSliceSource:
        assert self.state is not None
        return PitSliceSource(
            key=cp.key,
            cluster=self.cluster,
            dialect=self.dialect,
            index=self.state.scan_index,
            pit_id=cp.pit_id or self.state.pit_id or "",
            keep_alive=self.settings.pit_keep_alive,
            page_size=self.settings.page_size,
            source_includes=self.mode().source_includes,
            slice_id=cp.slice_id,
            max_slices=cp.max_slices,
            cursor=cp.cursor,
        )

    def run_main_slices(self, todo: list[SliceCheckpoint]) -> None:
        """Run the unfinished slices of the main scan in this process (or as Ray tasks with ``ray_address``)."""
        assert self.state is not None
        if self.ray_address:
            self.run_main_slices_on_ray(todo)
            return
        sources = [self.pit_source(cp) for cp in todo]
        try:
            self.run_sources(todo, sources, "main", total=self.cluster.count(self.state.scan_index))
        finally:
            for source in sources:
                source.close()

    def run_main_slices_on_ray(self, todo: list[SliceCheckpoint]) -> None:
        """Run the unfinished slices as Ray tasks, each storing its own checkpoint; wait for them all.

        Slices whose worker or node died are resubmitted from their stored checkpoints (at most
        ``settings.ray_lost_slice_retries`` times; each resubmission is recorded in the job document as
        ``ray_resubmitted``); a slice that failed by an error of its own fails the job (``--resume`` continues it).
        """
        assert self.state is not None
        if self.cluster_spec is None:
            raise ConfigError("Ray slices need a cluster spec (how each task reaches the cluster)", field="ray_address")
        if self.embedder is not None and not self.embed_url:
            raise ConfigError("--ray-address needs --embed-url (each Ray task opens its own client)", field="embed_url")
        for attempt in range(self.settings.ray_lost_slice_retries + 1):
            try:
                self._run_slice_tasks(todo)
                return
            except JobError as e:
                lost, failures = list(getattr(e, "lost", [])), list(getattr(e, "failures", []))
                if not lost or len(lost) < len(failures) or attempt == self.settings.ray_lost_slice_retries:
                    raise JobError(f"{self.kind} {self.job_id}: {e} (resume with --resume)", **e.details) from e
                todo = [self.checkpoints[key] for key in sorted(lost)]  # reloaded by _run_slice_tasks
                self.ray_resubmitted += [key for key in sorted(lost)]
                self.save_state(ray_resubmitted=self.ray_resubmitted)
                logger.warning(
                    "%s %s: the Ray worker or node of slices %s died; resubmitting them from their checkpoints",
                    self.kind, self.job_id, ", ".join(sorted(lost)),
                )  # fmt: skip

    def _run_slice_tasks(self, todo: list[SliceCheckpoint]) -> None:
        assert self.state is not None and self.cluster_spec is not None
        tasks = {
            cp.key: SliceTask(
                cluster_spec=self.cluster_spec,
                embed_url=self.embed_url if self.embedder is not None else None,
                settings=self.settings,
                make_mode=self.task_mode_factory(),
                dims=self.dims,
                dialect=self.dialect,
                scan_index=self.state.scan_index,
                checkpoint=cp,
                pit_id=self.state.pit_id or "",
                passages=PassageCut.of(self.passages) if self.passages is not None else None,
                make_embedder=self.task_embedder,
            )
            for cp in todo
        }
        logger.info("%s %s: %s slices go to Ray at %s", self.kind, self.job_id, len(tasks), self.ray_address)
        try:
            run_on_ray(
                run_slice_task,
                tasks,
                address=self.ray_address,
                num_cpus=self.settings.ray_task_cpus,
                on_progress=self._log_ray_progress,
                progress_interval_s=self.settings.progress_interval_s,
            )
        finally:
            self.checkpoints.update(self.store.load_checkpoints(self.job_id))

    def _log_ray_progress(self, tasks_done: int, tasks: int) -> None:
        """What the slices' checkpoints have committed so far (finished documents)."""
        checkpoints = self.store.load_checkpoints(self.job_id).values()
        progress = sum_counts(cp for cp in checkpoints if cp.pass_name == "main")
        logger.info(
            "%s %s on Ray: %s done (%s read), %s updated, %s/%s slices done",
            self.kind,
            self.job_id,
            progress.finished,
            progress.read,
            progress.updated,
            tasks_done,
            tasks,
        )

    def run_main(self) -> JobCounts:
        cps = self.main_checkpoints()
        todo = [cp for cp in cps if not cp.done]
        if todo:
            self.run_main_slices(todo)
        return sum_counts([self.checkpoints[cp.key] for cp in cps])

    def close_pit(self) -> None:
        if self.state is not None and self.state.pit_id:
            self.dialect.close_pit(self.cluster, self.state.pit_id)
            self.state.pit_id = None

    # -- catch-up ---------------------------------------------------------------------
    def catch_up_windows(self) -> dict[int, list[int]]:
        """Per shard ``[after, upto]`` of the next catch-up pass (marks read before the refresh)."""
        return catch_up.catch_up_windows(self)

    def run_catch_up(self, *, max_passes: int | None = None, until_quiet: bool = True) -> JobCounts:
        """Catch-up passes until one writes nothing (or ``max_passes``); returns their summed counts."""
        return catch_up.run_catch_up(self, max_passes=max_passes, until_quiet=until_quiet)

    def catch_up_counts(self) -> JobCounts:
        return catch_up.catch_up_counts(self)
