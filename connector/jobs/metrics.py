"""A finished job's summary as Prometheus series, written for node_exporter or pushed (cron-style runs).

Metrics never fail a job: a file or a gateway that cannot be written is logged at WARNING and the job's own
result stands.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import cast

from connector.jobs.common import JobSummary
from connector.observe.jobs import JobKind, JobSample, push_job_metrics, write_job_textfile

__all__ = ["export_job_metrics", "job_sample"]

logger = logging.getLogger(__name__)
_KINDS = ("backfill", "reindex", "profiles", "images")


def job_sample(summary: JobSummary, *, now: float | None = None) -> JobSample:
    """The :class:`JobSample` of a job run that returned ``summary`` (pure but for the clock).

    Retries are the writes redone after a 409 (the transport's own retries are logged, not counted); a completed
    run has no documents left and records its end as the last success.
    """
    total = summary.total
    completed = summary.status == "completed"
    kind = summary.kind if summary.kind in _KINDS else "backfill"
    return JobSample(
        kind=cast(JobKind, kind),
        index=summary.alias or summary.index,
        outcomes={
            "updated": total.updated,
            "skipped": total.skipped,
            "dead_lettered": total.dead_lettered,
            "vanished": total.vanished,
        },
        rate=summary.docs_per_s,
        retries=total.conflicts,
        remaining=0 if completed else None,
        finished_at=(time.time() if now is None else now) if completed else None,
    )


def export_job_metrics(summary: JobSummary, *, textfile_dir: str | None = None, pushgateway: str | None = None) -> None:
    """Write ``summary`` to ``textfile_dir`` and/or push it to ``pushgateway``; failures are logged, not raised."""
    if not textfile_dir and not pushgateway:
        return
    sample = job_sample(summary)
    try:
        if textfile_dir:
            path = write_job_textfile(sample, Path(textfile_dir))
            logger.info("job metrics written to %s", path)
        if pushgateway:
            push_job_metrics(sample, pushgateway)
            logger.info("job metrics pushed to %s", pushgateway)
    except (ImportError, OSError) as e:
        logger.warning("job metrics not exported (%s); the job itself finished: %s", e, summary.status)
