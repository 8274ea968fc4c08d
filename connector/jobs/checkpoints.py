"""Ordered checkpoints: a slice's cursor moves past a page only once every page before it is written."""

from __future__ import annotations

import threading
from collections.abc import Iterable

from connector.jobs.store import JobCounts, JobStore, SliceCheckpoint
from connector.jobs.work import Page

__all__ = ["CheckpointTracker"]


class CheckpointTracker:
    """Commits pages of each slice in order and stores the slice's checkpoint.

    Pages finish out of order (several embed and write workers); a slice's cursor only
    moves past page ``n`` once pages ``0..n`` are all written, so a resumed job redoes at
    most the pages that were in flight.
    """

    def __init__(self, store: JobStore | None, checkpoints: Iterable[SliceCheckpoint]) -> None:
        self.store = store
        self._checkpoints = {cp.key: cp for cp in checkpoints}
        self._locks = {key: threading.Lock() for key in self._checkpoints}
        self._next_seq = {key: 0 for key in self._checkpoints}
        self._finished: dict[str, dict[int, Page]] = {key: {} for key in self._checkpoints}

    def checkpoint(self, key: str) -> SliceCheckpoint:
        return self._checkpoints[key]

    def complete(self, page: Page) -> None:
        key = page.slice_key
        with self._locks[key]:
            self._finished[key][page.seq] = page
            cp = self._checkpoints[key]
            advanced = False
            while self._next_seq[key] in self._finished[key]:
                done = self._finished[key].pop(self._next_seq[key])
                self._next_seq[key] += 1
                if done.restart:
                    cp.counts = JobCounts(embedded=cp.counts.embedded, reused=cp.counts.reused)
                    cp.cursor = None
                cp.counts.add(done.counts)
                if done.cursor is not None:
                    cp.cursor = done.cursor
                if done.pit_id is not None:
                    cp.pit_id = done.pit_id
                cp.done = cp.done or done.end
                advanced = True
            if advanced:
                cp.commit_seq += 1
                if self.store is not None:
                    self.store.save_checkpoint(cp)
