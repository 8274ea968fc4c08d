"""Job metrics for cron-style runs: a Prometheus textfile (node_exporter's collector) or a Pushgateway push.

A backfill or reindex run is too short-lived to be scraped, so it writes its last sample where Prometheus finds
it: a ``.prom`` file in node_exporter's ``--collector.textfile.directory`` (written atomically: a temp file, then
a rename), or a push to a Pushgateway under ``job="eshybrid_<kind>"`` and ``index``. Labels: the job kind and the
index (one per job, bounded by the deployment's indices), never document ids.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from connector.observe.metrics import available

__all__ = ["JOB_SERIES", "JobSample", "job_registry", "push_job_metrics", "write_job_textfile"]

JobKind = Literal["backfill", "reindex", "profiles", "images"]

JOB_SERIES: dict[str, str] = {
    "eshybrid_job_documents": "gauge{job,index,outcome}: documents finished, by outcome (updated, skipped, ...)",
    "eshybrid_job_documents_per_second": "gauge{job,index}: documents finished per second by this run",
    "eshybrid_job_dead_letters": "gauge{job,index}: documents sent to the dead-letter index",
    "eshybrid_job_retries": "gauge{job,index}: retried writes and embeddings (409 redos included)",
    "eshybrid_job_lag_documents": "gauge{job,index}: documents still to process (total - done)",
    "eshybrid_job_last_success_timestamp_seconds": "gauge{job,index}: end of the last run that finished",
}


@dataclass(frozen=True)
class JobSample:
    """One sample of a job run, in numbers (from ``JobCounts`` and ``Progress``).

    Attributes:
        kind: backfill | reindex | profiles | images.
        index: the index (or alias) the job works on.
        outcomes: documents finished by outcome (``updated``, ``skipped``, ``dead_lettered``, ``vanished``).
        rate: documents finished per second by this run.
        retries: writes or embeddings sent again (409 redos, 429s, transport retries).
        remaining: documents left (``None``: total unknown).
        finished_at: unix time the run finished (``None``: still running or failed).
    """

    kind: JobKind
    index: str
    outcomes: dict[str, int]
    rate: float
    retries: int = 0
    remaining: int | None = None
    finished_at: float | None = None


def job_registry(sample: JobSample) -> Any:
    """A fresh ``CollectorRegistry`` holding ``sample`` as the :data:`JOB_SERIES`.

    Raises:
        ImportError: prometheus-client is not installed (``pip install 'eshybrid[observe]'``).
    """
    if not available():
        raise ImportError("job metrics need prometheus-client: pip install 'eshybrid[observe]'")
    from prometheus_client import CollectorRegistry, Gauge

    registry = CollectorRegistry()
    labels = {"job": sample.kind, "index": sample.index}
    names = ["job", "index"]
    documents = Gauge(
        "eshybrid_job_documents", "Documents finished, by outcome.", [*names, "outcome"], registry=registry
    )
    for outcome, count in sorted(sample.outcomes.items()):
        documents.labels(outcome=outcome, **labels).set(count)

    def gauge(name: str, help_text: str, value: float) -> None:
        Gauge(name, help_text, names, registry=registry).labels(**labels).set(value)

    gauge("eshybrid_job_documents_per_second", "Documents finished per second by this run.", sample.rate)
    gauge(
        "eshybrid_job_dead_letters", "Documents sent to the dead-letter index.", sample.outcomes.get("dead_lettered", 0)
    )
    gauge("eshybrid_job_retries", "Writes and embeddings sent again.", sample.retries)
    if sample.remaining is not None:
        gauge("eshybrid_job_lag_documents", "Documents still to process.", max(0, sample.remaining))
    if sample.finished_at is not None:
        gauge("eshybrid_job_last_success_timestamp_seconds", "End of the last run that finished.", sample.finished_at)
    return registry


def write_job_textfile(sample: JobSample, directory: str | Path) -> Path:
    """Write ``sample`` to ``<directory>/eshybrid_<kind>_<index>.prom`` atomically; return the path.

    Raises:
        ImportError: prometheus-client is not installed.
        OSError: the directory is not writable.
    """
    from prometheus_client import write_to_textfile

    safe_index = "".join(c if c.isalnum() or c in "-_" else "_" for c in sample.index)
    path = Path(directory) / f"eshybrid_{sample.kind}_{safe_index}.prom"
    write_to_textfile(str(path), job_registry(sample))  # writes a temp file and renames it over the old one
    return path


def push_job_metrics(sample: JobSample, gateway: str, *, timeout_s: float = 10.0) -> None:
    """Push ``sample`` to a Pushgateway at ``gateway`` (``host:port`` or a URL), grouped by job and index.

    Raises:
        ImportError: prometheus-client is not installed.
        OSError: the gateway could not be reached (a cron run logs it and goes on: metrics never fail a job).
    """
    from prometheus_client import push_to_gateway

    push_to_gateway(
        gateway,
        job=f"eshybrid_{sample.kind}",
        registry=job_registry(sample),
        grouping_key={"index": sample.index},
        timeout=timeout_s,
    )
