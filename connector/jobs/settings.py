"""Settings of backfill / reindex jobs (env prefix ``ESHYBRID_JOB_``); how to reach a cluster is
:mod:`connector.cluster.settings` (re-exported here).

CLI flags override these; every field is bounded and says its unit.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from connector.cluster.settings import ClusterSpec, ConnectionSettings

__all__ = ["ClusterSpec", "ConnectionSettings", "JobSettings"]


class JobSettings(BaseSettings):
    """Sizes, limits and index names of jobs."""

    model_config = SettingsConfigDict(env_prefix="ESHYBRID_JOB_", extra="forbid", frozen=True)

    page_size: int = Field(500, ge=1, le=10_000, description="documents per point-in-time page")
    embed_workers: int = Field(4, ge=1, le=64, description="threads sending texts to the embedding service")
    write_workers: int = Field(2, ge=1, le=16, description="threads sending bulk requests")
    read_workers: int = Field(4, ge=1, le=64, description="slices read at the same time in one process")
    queue_pages: int = Field(4, ge=1, le=64, description="pages each bounded queue holds")
    bulk_max_docs: int = Field(500, ge=1, le=10_000, description="most actions per bulk request")
    bulk_max_bytes: int = Field(
        8 * 1024 * 1024, ge=1024, le=100 * 1024 * 1024, description="most bytes per bulk request"
    )
    bulk_max_retries: int = Field(8, ge=0, le=50, description="resends of a bulk request / of its 429 items")
    embed_max_retries: int = Field(8, ge=0, le=50, description="resends of an embedding request on 429/503")
    conflict_max_attempts: int = Field(5, ge=1, le=50, description="re-reads of a document the app keeps changing")
    max_backoff_s: float = Field(30.0, gt=0, le=600, description="longest wait between retries")
    pit_keep_alive: str = Field("10m", pattern=r"^\d+[smh]$", description="point-in-time keep-alive per page")
    max_text_chars: int = Field(32_768, ge=1, le=10_000_000, description="longer texts are dead-lettered")
    max_catch_up_passes: int = Field(5, ge=0, le=50, description="catch-up passes after the main scan")
    jobs_index: str = Field("eshybrid-jobs", min_length=1, description="index of job documents and checkpoints")
    dead_letter_index: str = Field("eshybrid-dead-letters", min_length=1, description="index of dead letters")
    progress_interval_s: float = Field(10.0, gt=0, le=3600, description="seconds between progress log lines")
    job_doc_interval_s: float = Field(5.0, gt=0, le=3600, description="seconds between job document updates")
    ray_task_cpus: float = Field(
        0.25, ge=0, le=64, description="CPUs each Ray slice task reserves (they mostly wait on HTTP)"
    )
    # One: a node lost mid-job is rare and one resubmission covers it; a task that dies again on resubmission
    # points at something systematic (a worker killed for memory every time) that retrying would only hide.
    ray_lost_slice_retries: int = Field(
        1, ge=0, le=10, description="resubmissions of slices whose Ray worker or node died (from their checkpoint)"
    )

    def with_overrides(self, **overrides: Any) -> JobSettings:
        """A copy with the non-``None`` overrides applied (validated)."""
        values = {k: v for k, v in overrides.items() if v is not None}
        return type(self).model_validate({**self.model_dump(), **values})
