"""Progress of a running job: a bar on a terminal, log lines otherwise, and the job document.

A :class:`JobMonitor` thread samples the pipeline's live counts: it drives a tqdm bar
(rate and ETA) when stderr is a TTY, or writes a plain log line every
``progress_interval_s``; and it updates the job document in the cluster every
``job_doc_interval_s`` so Kibana / Dashboards show status, counts and rate.

Progress counts *finished* documents (:attr:`JobCounts.finished`: written, skipped,
dead-lettered or vanished), never documents read: the readers run pages ahead of the
writers (bounded queues, several pages each), so a bar, rate or ETA fed by reads shows a
job nearly done while most of its writing is still to come.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from connector.errors import ClusterError
from connector.jobs.store import JobCounts, JobStore

__all__ = ["JobMonitor", "Progress", "format_eta", "progress_of"]

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


@dataclass(frozen=True)
class Progress:
    """One sample of a running job.

    Attributes:
        done: documents finished, those of earlier runs (a resumed job) included.
        read: documents read, earlier runs included (runs ahead of ``done``).
        total: documents to process, when known.
        rate: documents finished per second by this run.
        eta: time left at that rate (``m:ss`` / ``h:mm:ss``; ``-`` when unknown).
    """

    done: int
    read: int
    total: int | None
    rate: float
    eta: str


def progress_of(counts: JobCounts, *, base: JobCounts, total: int | None, elapsed_s: float) -> Progress:
    """The progress that ``counts`` (this run) on top of ``base`` (earlier runs) make after ``elapsed_s`` (pure)."""
    rate = counts.finished / max(elapsed_s, 1e-6)
    done = base.finished + counts.finished
    remaining = (total - done) if total is not None else 0
    return Progress(
        done=done,
        read=base.read + counts.read,
        total=total,
        rate=rate,
        eta=format_eta(remaining, rate),
    )


class JobMonitor:
    """Samples ``counts()`` in a background thread until :meth:`stop`.

    ``clock`` (default ``time.monotonic``) is what elapsed time and rates are measured with.
    """

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
        clock: Callable[[], float] = time.monotonic,
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
        self.clock = clock
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._bar: Any = None
        self._started = clock()
        self._last_log = self._last_doc = self._started

    def __enter__(self) -> JobMonitor:
        if self.show_bar:
            from tqdm import tqdm

            self._bar = tqdm(
                total=self.total,
                desc=self.label,
                unit="doc",
                dynamic_ncols=True,
                initial=self.base.finished,
                file=sys.stderr,
            )
        self._thread = threading.Thread(target=self._loop, name="job-monitor", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def sample(self, counts: JobCounts | None = None) -> Progress:
        """The progress now (``counts``: this run's live counts, default ``counts()``)."""
        counts = self.counts() if counts is None else counts
        return progress_of(counts, base=self.base, total=self.total, elapsed_s=self.clock() - self._started)

    def rate(self, counts: JobCounts) -> float:
        """Documents finished per second by this run."""
        return self.sample(counts).rate

    def _loop(self) -> None:
        while not self._stop.wait(0.5):
            self.tick()

    def tick(self) -> None:
        """One sample: move the bar (or write a log line when one is due), update the job document when due."""
        counts = self.counts()
        now = self.clock()
        if self._bar is not None:
            self._show(counts)
        elif now - self._last_log >= self.progress_interval_s:
            self._log(counts)
            self._last_log = now
        if self.store is not None and self.job_id and now - self._last_doc >= self.job_doc_interval_s:
            self._update_job_doc(counts)
            self._last_doc = now

    def _show(self, counts: JobCounts) -> None:
        # tqdm's own rate and ETA follow ``n``: finished documents.
        self._bar.n = self.base.finished + counts.finished
        self._bar.set_postfix(
            read=self.base.read + counts.read,
            updated=self.base.updated + counts.updated,
            skipped=self.base.skipped + counts.skipped,
            dead=self.base.dead_lettered + counts.dead_lettered,
            refresh=False,
        )
        self._bar.refresh()

    def _log(self, counts: JobCounts) -> None:
        progress = self.sample(counts)
        logger.info(
            "%s: %s%s done (%s read), %s updated, %s skipped, %s dead letters, %.0f docs/s, ETA %s",
            self.label,
            progress.done,
            f"/{self.total}" if self.total is not None else "",
            progress.read,
            self.base.updated + counts.updated,
            self.base.skipped + counts.skipped,
            self.base.dead_lettered + counts.dead_lettered,
            progress.rate,
            progress.eta,
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
                    "elapsed_s": round(self.clock() - self._started, 1),
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
            self._bar.n = self.base.finished + self.counts().finished
            self._bar.refresh()
            self._bar.close()
            self._bar = None
