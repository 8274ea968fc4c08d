"""A job summary becomes the job's Prometheus sample (pure), and an unwritable folder never fails the job."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from connector.jobs.common import JobSummary
from connector.jobs.metrics import export_job_metrics, job_sample
from connector.jobs.store import JobCounts


def _summary(status: str = "completed") -> JobSummary:
    main = JobCounts(read=100, updated=90, skipped=5, dead_lettered=3, vanished=2, embedded=95, conflicts=4)
    return JobSummary(
        job_id="j1", kind="reindex", index="products-v2", alias="products", status=status, main=main,
        catch_up=JobCounts(read=2, updated=2), elapsed_s=10.0, main_elapsed_s=10.0,
    )  # fmt: skip


def test_a_completed_run_has_no_lag_and_a_last_success() -> None:
    sample = job_sample(_summary(), now=1_800_000_000.0)
    assert sample.kind == "reindex" and sample.index == "products"  # the alias the application queries
    assert sample.outcomes == {"updated": 92, "skipped": 5, "dead_lettered": 3, "vanished": 2}
    assert (sample.rate, sample.retries, sample.remaining, sample.finished_at) == (10.0, 4, 0, 1_800_000_000.0)


def test_an_unfinished_run_has_no_last_success() -> None:
    sample = job_sample(_summary("failed"))
    assert sample.remaining is None and sample.finished_at is None


def test_an_unwritable_folder_is_logged_not_raised(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    missing = tmp_path / "no" / "such" / "dir"
    with caplog.at_level(logging.WARNING, logger="connector.jobs.metrics"):
        export_job_metrics(_summary(), textfile_dir=str(missing))
    assert "job metrics not exported" in caplog.text
