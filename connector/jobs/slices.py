"""One slice of a job's main scan, run to its end in whatever process gets it (a Ray task).

A :class:`SliceTask` holds everything that process needs, all of it picklable: how to
reach the cluster (a :class:`ClusterSpec`, not a connection), the embedding service's
URL, the job's settings, the slice's checkpoint and point in time, and ``make_mode``: a
picklable callable (e.g. ``functools.partial`` of the job's mode class) that builds the
job's :class:`~connector.jobs.pipeline.JobMode` on the process's own connection. The task
stores its own checkpoint as it goes, so a killed task is resumed slice by slice.

Nothing here knows which kind of job it runs: backfill and reindex hand in their modes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from connector.cluster.client import Cluster
from connector.errors import ConfigError
from connector.jobs.dialect import PitDialect
from connector.jobs.passages import PassagePolicy, PassageStep
from connector.jobs.pipeline import CheckpointTracker, Embedder, JobMode, Pipeline, PipelineOptions
from connector.jobs.settings import ClusterSpec, JobSettings
from connector.jobs.sources import PitSliceSource
from connector.jobs.store import JobStore, SliceCheckpoint
from connector.services.embedding import EmbeddingClient

__all__ = ["PassageCut", "SliceTask", "run_slice_task"]


@dataclass(frozen=True, kw_only=True)
class SliceTask:
    """One slice of a main scan, as a picklable description.

    Attributes:
        cluster_spec: how the task reaches the cluster (it opens its own connection).
        embed_url: the embedding service (``None``: a job that embeds nothing, e.g. a copy-only reindex).
        settings: the job's settings (page size, workers, job indices...).
        make_mode: builds the job's mode on the task's connection; must pickle.
        dims: the vector size the pipeline checks.
        dialect: the point-in-time dialect of the cluster (detected by the driver).
        scan_index: the concrete index scanned.
        checkpoint: where the slice stands (its key, slice id, cursor).
        pit_id: the job's point in time (when the checkpoint holds none).
        passages: a passage-mode job's cut (:class:`PassageCut`); the task cuts with its own client's tokenizer.
        make_embedder: builds the task's embedder (must pickle; e.g. the image job's fetcher + client); ``None``:
            an ``EmbeddingClient`` of ``embed_url``. An embedder with a ``text_version`` (what the incremental check
            hashes) hands it to the task's mode.
    """

    cluster_spec: ClusterSpec
    embed_url: str | None
    settings: JobSettings
    make_mode: Callable[[Cluster], JobMode]
    dims: int | None
    dialect: PitDialect
    scan_index: str
    checkpoint: SliceCheckpoint
    pit_id: str
    passages: PassageCut | None = None
    make_embedder: Callable[[], Embedder] | None = None


@dataclass(frozen=True, kw_only=True)
class PassageCut:
    """What a Ray task needs to cut passages as the job's own process does (the tokenizer is the task's client)."""

    policy: PassagePolicy
    max_length: int
    fields: tuple[str, ...]

    @classmethod
    def of(cls, step: PassageStep) -> PassageCut:
        return cls(policy=step.policy, max_length=step.max_length, fields=step.fields)


def run_slice_task(task: SliceTask) -> dict[str, int]:
    """Run one slice to its end in this process; returns its counts (``JobCounts.as_dict()``)."""
    settings = task.settings
    cluster = task.cluster_spec.connect()
    embedder: Embedder | None = None
    if task.make_embedder is not None:
        embedder = task.make_embedder()
    elif task.embed_url:
        embedder = EmbeddingClient(task.embed_url)
    try:
        store = JobStore(cluster, jobs_index=settings.jobs_index, dead_letter_index=settings.dead_letter_index)
        mode = task.make_mode(cluster)
        version = getattr(embedder, "text_version", None)
        if version is not None and hasattr(mode, "text_version"):
            mode.text_version = version  # built here: it holds this process's fetcher, which does not pickle
        cp = task.checkpoint
        source = PitSliceSource(
            key=cp.key,
            cluster=cluster,
            dialect=task.dialect,
            index=task.scan_index,
            pit_id=cp.pit_id or task.pit_id,
            keep_alive=settings.pit_keep_alive,
            page_size=settings.page_size,
            source_includes=mode.source_includes,
            slice_id=cp.slice_id,
            max_slices=cp.max_slices,
            cursor=cp.cursor,
        )
        passages = None
        if task.passages is not None:
            if embedder is None:
                raise ConfigError("a passage-mode slice needs the embedding service (embed_url)", field="embed_url")
            cut = task.passages
            passages = PassageStep(cut.policy, embedder, cut.max_length, fields=cut.fields)  # type: ignore[arg-type]
        pipeline = Pipeline(
            cluster=cluster,
            mode=mode,
            embedder=embedder,
            store=store,
            tracker=CheckpointTracker(store, [cp]),
            options=PipelineOptions.from_settings(settings, dims=task.dims, read_workers=1),
            passages=passages,
        )
        try:
            pipeline.run([source])
        finally:
            source.close()
        return cp.counts.as_dict()
    finally:
        close = getattr(embedder, "close", None)
        if close is not None:
            close()
        cluster.close()
