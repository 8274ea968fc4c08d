"""Job progress counts finished documents, not documents read (fake clock and counts, no network)."""

from __future__ import annotations

import io
import logging
from typing import Any

import pytest

from connector.jobs.progress import JobMonitor, format_eta, progress_of
from connector.jobs.store import JobCounts

# What the ESCI backfill looked like: the readers 4,000 documents ahead of the writers.
AHEAD = JobCounts(read=4500, updated=440, skipped=40, dead_lettered=15, vanished=5, embedded=4000, conflicts=3)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class RecordingStore:
    def __init__(self) -> None:
        self.updates: list[tuple[str, dict[str, Any]]] = []

    def update_job(self, job_id: str, changes: dict[str, Any]) -> None:
        self.updates.append((job_id, changes))


def test_finished_is_written_skipped_dead_lettered_or_vanished() -> None:
    assert AHEAD.finished == 500
    assert "finished" not in AHEAD.as_dict()  # the job document's count fields stay as they are


def test_rate_and_eta_come_from_finished_documents() -> None:
    progress = progress_of(AHEAD, base=JobCounts(), total=6764, elapsed_s=100.0)
    assert (progress.done, progress.read, progress.total) == (500, 4500, 6764)
    assert progress.rate == pytest.approx(5.0)
    assert progress.eta == format_eta(6764 - 500, 5.0) == "20:52"


def test_a_resumed_job_counts_earlier_runs_as_done_but_not_in_its_rate() -> None:
    base = JobCounts(read=1000, updated=1000)
    progress = progress_of(AHEAD, base=base, total=6764, elapsed_s=50.0)
    assert (progress.done, progress.read) == (1500, 5500)
    assert progress.rate == pytest.approx(10.0)
    assert progress.eta == format_eta(6764 - 1500, 10.0)


def test_nothing_finished_yet_has_no_eta() -> None:
    progress = progress_of(JobCounts(read=500), base=JobCounts(), total=6764, elapsed_s=3.0)
    assert progress.done == 0 and progress.rate == 0 and progress.eta == "-"


def test_monitor_log_line_and_job_document(caplog: pytest.LogCaptureFixture) -> None:
    clock, store = FakeClock(), RecordingStore()
    monitor = JobMonitor(
        label="backfill shop (main)",
        total=6764,
        counts=lambda: AHEAD,
        store=store,  # type: ignore[arg-type]
        job_id="job-1",
        progress_interval_s=10.0,
        job_doc_interval_s=5.0,
        show_bar=False,
        clock=clock,
    )
    clock.now += 100.0
    with caplog.at_level(logging.INFO, logger="connector.jobs.progress"):
        monitor.tick()
    assert caplog.messages == [
        "backfill shop (main): 500/6764 done (4500 read), 440 updated, 40 skipped, 15 dead letters, 5 docs/s, ETA 20:52"
    ]
    [(job_id, changes)] = store.updates
    assert job_id == "job-1"
    assert set(changes) == {"live_counts", "rate_docs_per_s", "elapsed_s"}
    assert changes["live_counts"] == AHEAD.as_dict()
    assert changes["rate_docs_per_s"] == 5.0 and changes["elapsed_s"] == 100.0
    monitor.tick()  # nothing due yet at the same instant
    assert len(store.updates) == 1


def test_the_bar_shows_finished_documents(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("tqdm")
    err = io.StringIO()
    monkeypatch.setattr("sys.stderr", err)
    clock = FakeClock()
    live = JobCounts()
    base = JobCounts(read=200, updated=200)
    monitor = JobMonitor(label="backfill", total=6764, counts=lambda: live, show_bar=True, base=base, clock=clock)
    monitor._loop = lambda: None  # type: ignore[method-assign]  # tick by hand
    with monitor:
        assert monitor._bar.n == 200
        live = JobCounts(read=4500, updated=300)
        monitor.tick()
        assert monitor._bar.n == 500
        assert monitor._bar.postfix is not None and "read=4700" in monitor._bar.postfix
        live = JobCounts(read=6564, updated=6564)
    assert "6764/6764" in err.getvalue()
