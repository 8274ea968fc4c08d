"""Scale-out: run the slices of a backfill as Ray tasks (imported only with ``--ray-address``).

Each task opens its own cluster connection and embedding client, runs the pipeline
for its one slice, and stores its own checkpoint, so a killed task (or driver) is
resumed slice by slice with ``--resume``. The driver polls the checkpoints for
progress. Workers must be able to import ``connector`` (installed, or on
``PYTHONPATH``: for a local Ray the driver passes its own path).
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import connector
from connector.errors import ConfigError, JobError
from connector.jobs.dialect import PitDialect
from connector.jobs.store import JobCounts, SliceCheckpoint, sum_counts

if TYPE_CHECKING:
    from connector.jobs.backfill import BackfillConfig, BackfillJob
    from connector.jobs.settings import ClusterSpec

__all__ = ["SliceTask", "run_backfill_slices_on_ray", "run_slice_task"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SliceTask:
    """Everything one Ray task needs to run one slice (pickled to the worker)."""

    cluster_spec: ClusterSpec
    embed_url: str
    config: BackfillConfig
    job_id: str
    model_id: str
    dims: int | None
    concrete_index: str
    dialect: PitDialect
    checkpoint: SliceCheckpoint
    pit_id: str


def run_slice_task(task: SliceTask) -> dict[str, int]:
    """Run one slice to its end in this process; returns its counts."""
    from connector.jobs.backfill import InPlaceMode
    from connector.jobs.pipeline import CheckpointTracker, Pipeline, PipelineOptions
    from connector.jobs.sources import PitSliceSource
    from connector.jobs.store import JobStore
    from connector.services.embedding import EmbeddingClient

    settings = task.config.settings
    cluster = task.cluster_spec.connect()
    embedder = EmbeddingClient(task.embed_url)
    try:
        store = JobStore(cluster, jobs_index=settings.jobs_index, dead_letter_index=settings.dead_letter_index)
        mode = InPlaceMode(
            cluster=cluster,
            job_id=task.job_id,
            vector_field=task.config.vector_field,
            model_id=task.model_id,
            policy=task.config.policy,
        )
        cp = task.checkpoint
        source = PitSliceSource(
            key=cp.key,
            cluster=cluster,
            dialect=task.dialect,
            index=task.concrete_index,
            pit_id=cp.pit_id or task.pit_id,
            keep_alive=settings.pit_keep_alive,
            page_size=settings.page_size,
            source_includes=mode.source_includes,
            slice_id=cp.slice_id,
            max_slices=cp.max_slices,
            cursor=cp.cursor,
        )
        options = PipelineOptions.from_settings(settings, dims=task.dims, read_workers=1)
        pipeline = Pipeline(
            cluster=cluster,
            mode=mode,
            embedder=embedder,
            store=store,
            tracker=CheckpointTracker(store, [cp]),
            options=options,
        )
        try:
            pipeline.run([source])
        finally:
            source.close()
        return cp.counts.as_dict()
    finally:
        embedder.close()
        cluster.close()


def _package_root() -> str:
    return os.path.dirname(os.path.dirname(os.path.abspath(connector.__file__)))


def run_backfill_slices_on_ray(job: BackfillJob, checkpoints: list[SliceCheckpoint]) -> JobCounts:
    """Run the given slices as Ray tasks on ``job.config.ray_address`` and wait for them all."""
    import ray

    if job.cluster_spec is None or not job.config.embed_url:
        raise ConfigError("Ray slices need a cluster spec and --embed-url", field="ray_address")
    assert job.state is not None
    if not ray.is_initialized():
        ray.init(address=job.config.ray_address, log_to_driver=False)
    root = _package_root()
    path = os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH", "")) if p)
    remote = ray.remote(run_slice_task).options(
        num_cpus=job.settings.ray_task_cpus,
        max_retries=0,
        runtime_env={"env_vars": {"PYTHONPATH": path}},
    )
    tasks = {}
    for cp in checkpoints:
        task = SliceTask(
            cluster_spec=job.cluster_spec,
            embed_url=job.config.embed_url,
            config=job.config,
            job_id=job.job_id,
            model_id=job.model_id,
            dims=job.dims,
            concrete_index=job.state.scan_index,
            dialect=job.dialect,
            checkpoint=cp,
            pit_id=job.state.pit_id or "",
        )
        tasks[remote.remote(task)] = cp.key
    logger.info("backfill %s: %s slices submitted to Ray at %s", job.job_id, len(tasks), job.config.ray_address)
    return _wait(job, tasks)


def _wait(job: BackfillJob, tasks: dict[Any, str]) -> JobCounts:
    import ray

    pending = list(tasks)
    totals = JobCounts()
    last_log = time.monotonic()
    errors: list[str] = []
    while pending:
        done, pending = ray.wait(pending, num_returns=len(pending), timeout=1.0)
        for ref in done:
            try:
                totals.add(JobCounts.from_dict(ray.get(ref)))
            except Exception as e:  # noqa: BLE001 - collected, raised once all tasks ended
                errors.append(f"slice {tasks[ref]}: {e}")
        if time.monotonic() - last_log >= job.settings.progress_interval_s:
            checkpoints = job.store.load_checkpoints(job.job_id).values()
            progress = sum_counts(cp for cp in checkpoints if cp.pass_name == "main")
            logger.info(
                "backfill %s on Ray: %s read, %s updated, %s/%s slices done",
                job.job_id,
                progress.read,
                progress.updated,
                len(tasks) - len(pending),
                len(tasks),
            )
            last_log = time.monotonic()
    if errors:
        raise JobError(f"{len(errors)} Ray slice task(s) failed (resume with --resume): {'; '.join(errors)}")
    return totals
