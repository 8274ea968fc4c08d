"""Progress of a running job: a bar on a terminal, log lines otherwise, and the job document.

A :class:`JobMonitor` thread samples the pipeline's live counts: it drives a tqdm bar
(rate and ETA) when stderr is a TTY, or writes a plain log line every
``progress_interval_s``; and it updates the job document in the cluster every
``job_doc_interval_s`` so Kibana / Dashboards show status, counts and rate.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

from connector.errors import ClusterError
from connector.jobs.store import JobCounts, JobStore

__all__ = ["JobMonitor", "format_eta"]

logger = logging.getLogger(__name__)


def format_eta(remaining: float, rate: float) -> str:
    if rate <= 0 or remaining <= 0:
        return "-"
    seconds = int(remaining / rate)
    return (
        f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"
        if seconds >= 3600
        else f"{seconds // 60}:{seconds % 60:02d}"
    )


class JobMonitor:
    """Samples ``counts()`` in a background thread until :meth:`stop`."""

    def __init__(
        self,
        *,
        label: str,
        total: int | None,
        counts: Callable[[], JobCounts],
        store: JobStore | None = None,
        job_id: str | None = None,
        progress_interval_s: float = 10.0,
        job_doc_interval_s: float = 5.0,
        show_bar: bool | None = None,
        base: JobCounts | None = None,
    ) -> None:
        self.label = label
        self.total = total
        self.counts = counts
        self.store = store
        self.job_id = job_id
        self.progress_interval_s = progress_interval_s
        self.job_doc_interval_s = job_doc_interval_s
        self.show_bar = sys.stderr.isatty() if show_bar is None else show_bar
        self.base = base or JobCounts()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._bar: Any = None
        self._started = time.monotonic()

    def __enter__(self) -> JobMonitor:
        if self.show_bar:
            from tqdm import tqdm

            self._bar = tqdm(
                total=self.total,
                desc=self.label,
                unit="doc",
                dynamic_ncols=True,
                initial=self.base.read,
                file=sys.stderr,
            )
        self._thread = threading.Thread(target=self._loop, name="job-monitor", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def rate(self, counts: JobCounts) -> float:
        elapsed = max(time.monotonic() - self._started, 1e-6)
        return counts.read / elapsed

    def _loop(self) -> None:
        last_log = last_doc = time.monotonic()
        while not self._stop.wait(0.5):
            counts = self.counts()
            now = time.monotonic()
            if self._bar is not None:
                self._bar.n = self.base.read + counts.read
                self._bar.set_postfix(
                    updated=self.base.updated + counts.updated,
                    skipped=self.base.skipped + counts.skipped,
                    dead=self.base.dead_lettered + counts.dead_lettered,
                    refresh=False,
                )
                self._bar.refresh()
            elif now - last_log >= self.progress_interval_s:
                self._log(counts)
                last_log = now
            if self.store is not None and self.job_id and now - last_doc >= self.job_doc_interval_s:
                self._update_job_doc(counts)
                last_doc = now

    def _log(self, counts: JobCounts) -> None:
        rate = self.rate(counts)
        done = self.base.read + counts.read
        remaining = (self.total - done) if self.total is not None else 0
        logger.info(
            "%s: %s%s read, %s updated, %s skipped, %s dead letters, %.0f docs/s, ETA %s",
            self.label,
            done,
            f"/{self.total}" if self.total is not None else "",
            self.base.updated + counts.updated,
            self.base.skipped + counts.skipped,
            self.base.dead_lettered + counts.dead_lettered,
            rate,
            format_eta(remaining, rate),
        )

    def _update_job_doc(self, counts: JobCounts) -> None:
        assert self.store is not None and self.job_id is not None
        total = JobCounts(**self.base.as_dict())
        total.add(counts)
        try:
            self.store.update_job(
                self.job_id,
                {
                    "live_counts": total.as_dict(),
                    "rate_docs_per_s": round(self.rate(counts), 2),
                    "elapsed_s": round(time.monotonic() - self._started, 1),
                },
            )
        except ClusterError as e:
            logger.warning("could not update job document %s: %s", self.job_id, e)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        if self._bar is not None:
            self._bar.n = self.base.read + self.counts().read
            self._bar.refresh()
            self._bar.close()
            self._bar = None
