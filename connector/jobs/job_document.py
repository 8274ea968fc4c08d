"""A job's document in the jobs index: the scan state it keeps, and how a job starts, resumes or fails.

Functions of a :class:`~connector.jobs.runner.JobRunner` (which calls them from its
methods of the same name); the document's mapping is ``mappings.system``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from connector.cluster.client import JsonDict
from connector.errors import ConfigError, JobError
from connector.jobs.common import new_job_id, owner_name
from connector.jobs.sources import shard_high_water_marks
from connector.jobs.store import now_iso

if TYPE_CHECKING:
    from connector.jobs.runner import JobRunner

__all__ = ["ScanState", "find_existing", "record_failure", "resume_from", "start_new"]

logger = logging.getLogger(__name__)


@dataclass
class ScanState:
    """What a job keeps in its job document to be resumed.

    ``high_water``: per shard, the sequence number up to which writes are processed;
    ``windows``: the ``[after, upto]`` of the catch-up pass in progress;
    ``extra``: the job kind's own state (target index, alias...).
    """

    scan_index: str
    pit_id: str | None
    high_water: dict[int, int]
    phase: str = "main"
    catch_up_pass: int = 0
    windows: dict[int, list[int]] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    def to_doc(self) -> JsonDict:
        return {
            "scan_index": self.scan_index,
            "pit_id": self.pit_id,
            "high_water": {str(k): v for k, v in self.high_water.items()},
            "phase": self.phase,
            "catch_up_pass": self.catch_up_pass,
            "windows": {str(k): v for k, v in self.windows.items()},
            "extra": self.extra,
        }

    @classmethod
    def from_doc(cls, doc: Mapping[str, Any]) -> ScanState:
        return cls(
            scan_index=doc["scan_index"],
            pit_id=doc.get("pit_id"),
            high_water={int(k): int(v) for k, v in (doc.get("high_water") or {}).items()},
            phase=doc.get("phase", "main"),
            catch_up_pass=int(doc.get("catch_up_pass", 0)),
            windows={int(k): list(v) for k, v in (doc.get("windows") or {}).items()},
            extra=dict(doc.get("extra") or {}),
        )


def find_existing(runner: JobRunner) -> JsonDict | None:
    """The job to resume (``--resume``), or ``None`` to start a new one."""
    if not runner.resume:
        if runner.requested_job_id and runner.store.get_job(runner.requested_job_id) is not None:
            raise ConfigError(f"job {runner.requested_job_id!r} exists; pass --resume to continue it", field="job_id")
        return None
    if runner.requested_job_id:
        job = runner.store.get_job(runner.requested_job_id)
        if job is None:
            raise ConfigError(
                f"no job {runner.requested_job_id!r} to resume in {runner.settings.jobs_index}", field="job_id"
            )
        return job
    job = runner.store.find_resumable(kind=runner.kind, index=runner.label_index, vector_field=runner.vector_field)
    if job is None:
        logger.info(
            "no unfinished %s of %s.%s: starting a new job", runner.kind, runner.label_index, runner.vector_field
        )
    return job


def start_new(
    runner: JobRunner, scan_index: str, doc: Mapping[str, Any], extra: Mapping[str, Any] | None = None
) -> None:
    """Take the high-water marks, open the point in time, write the job document."""
    runner.job_id = runner.requested_job_id or new_job_id(runner.kind, runner.label_index, runner.vector_field)
    # The marks are read before the refresh: every write at or below them is in the scan.
    high_water = shard_high_water_marks(runner.cluster, scan_index)
    runner.cluster.refresh(scan_index)
    pit_id = runner.dialect.open_pit(runner.cluster, scan_index, keep_alive=runner.settings.pit_keep_alive)
    runner.state = ScanState(scan_index=scan_index, pit_id=pit_id, high_water=high_water, extra=dict(extra or {}))
    runner.store.put_job(
        runner.job_id,
        {
            "kind": runner.kind,
            "index": runner.label_index,
            "vector_field": runner.vector_field,
            "status": "running",
            "phase": "main",
            "owner": owner_name(),
            "params": runner.params(),
            "state": runner.state.to_doc(),
            "docs_total": runner.cluster.count(scan_index),
            "started_at": now_iso(),
            "updated_at": now_iso(),
            "errors": [],
            **doc,
        },
    )
    logger.info("%s job %s started on %s (%s slices)", runner.kind, runner.job_id, scan_index, runner.slices)


def resume_from(runner: JobRunner, job: Mapping[str, Any]) -> None:
    if job.get("status") == "completed":
        raise ConfigError(
            f"job {job['job_id']!r} already completed; run without --resume for a new job", field="job_id"
        )
    wanted, stored = runner.params(), job.get("params") or {}
    differing = [k for k in wanted if k not in ("max_text_chars", "delete_old") and stored.get(k) != wanted[k]]
    if differing:
        raise ConfigError(
            f"job {job['job_id']!r} ran with other {', '.join(differing)} "
            f"({', '.join(f'{k}={stored.get(k)!r}' for k in differing)}); resume with the same options",
            field=differing[0],
        )
    runner.job_id = str(job["job_id"])
    runner.state = ScanState.from_doc(job["state"])
    runner.checkpoints = runner.store.load_checkpoints(runner.job_id)
    runner.store.update_job(runner.job_id, {"status": "running", "owner": owner_name()})
    logger.info(
        "resuming %s job %s (phase %s, %s checkpoints)",
        runner.kind,
        runner.job_id,
        runner.state.phase,
        len(runner.checkpoints),
    )


def record_failure(runner: JobRunner, err: BaseException) -> None:
    if not runner.job_id:
        return
    status = "interrupted" if isinstance(err, KeyboardInterrupt) else "failed"
    try:
        stored = runner.store.get_job(runner.job_id) or {}
        errors = list(stored.get("errors") or [])[-19:] + [{"at": now_iso(), "message": str(err)[:2000]}]
        runner.store.update_job(runner.job_id, {"status": status, "errors": errors, "finished_at": now_iso()})
    except Exception as e:  # noqa: BLE001 - the original error matters more
        logger.warning("could not record the failure of job %s: %s", runner.job_id, e)
    if isinstance(err, JobError):
        logger.error("%s %s stopped: %s; continue it with --resume", runner.kind, runner.job_id, err)
