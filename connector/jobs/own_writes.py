"""The writes a backfill made itself, so its catch-up need not read them again.

Every write gets a new ``_seq_no``, so the backfill's own partial updates land above the
high-water mark and the catch-up window holds every document the job just wrote. A document
whose current ``_seq_no`` is still the one the job's own (conditional) write got was not written
by anyone since: its vector is current by construction. The catch-up reads its window without
``_source`` and fetches the sources (``_mget``) only of the other documents: new ones, and ones the
application changed after the job wrote them (their ``_seq_no`` moved on).

Kept in the job's process, bounded (``max_entries``; past it, later writes are simply not
remembered and are read as before). Not kept across a resume, and not filled by slices that run
as Ray tasks: then the catch-up reads those documents as it always did. Either way it stays correct.
"""

from __future__ import annotations

import threading

__all__ = ["OwnWrites"]


class OwnWrites:
    """``(index, id) -> _seq_no`` of the job's own successful writes (thread-safe)."""

    def __init__(self, *, max_entries: int = 2_000_000) -> None:
        self.max_entries = max_entries
        self._seq_nos: dict[tuple[str, str], int] = {}
        self._lock = threading.Lock()
        self.dropped = 0

    def add(self, index: str, doc_id: str, seq_no: int) -> None:
        """Remember that the job's write of ``doc_id`` got ``seq_no``."""
        key = (index, doc_id)
        with self._lock:
            if key in self._seq_nos or len(self._seq_nos) < self.max_entries:
                self._seq_nos[key] = seq_no
            else:
                self.dropped += 1

    def is_own(self, index: str, doc_id: str, seq_no: int | None) -> bool:
        """Whether ``seq_no`` is the document's state right after the job's own write."""
        if seq_no is None:
            return False
        with self._lock:
            return self._seq_nos.get((index, doc_id)) == seq_no

    def __len__(self) -> int:
        with self._lock:
            return len(self._seq_nos)
