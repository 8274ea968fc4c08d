"""The backfill's memory of its own writes (what its catch-up need not read again)."""

from __future__ import annotations

import threading

from connector.jobs.own_writes import OwnWrites


def test_a_document_is_own_only_at_the_seq_no_the_jobs_write_got() -> None:
    own = OwnWrites()
    own.add("idx", "a", 10)
    assert own.is_own("idx", "a", 10)
    assert not own.is_own("idx", "a", 11)  # written again since (the application): read it
    assert not own.is_own("other", "a", 10)  # another index
    assert not own.is_own("idx", "b", 10)  # never written by the job (new): read it
    assert not own.is_own("idx", "a", None)
    own.add("idx", "a", 12)  # the job wrote it again (a catch-up pass)
    assert own.is_own("idx", "a", 12) and not own.is_own("idx", "a", 10)


def test_bounded_past_max_entries_later_writes_are_not_remembered() -> None:
    own = OwnWrites(max_entries=2)
    for i in range(4):
        own.add("idx", str(i), i)
    assert len(own) == 2 and own.dropped == 2
    assert own.is_own("idx", "0", 0) and not own.is_own("idx", "3", 3)  # read as before: still correct
    own.add("idx", "0", 7)  # a remembered document is updated even when full
    assert own.is_own("idx", "0", 7)


def test_threads_add_concurrently() -> None:
    own = OwnWrites()
    threads = [
        threading.Thread(target=lambda t=t: [own.add("idx", f"{t}-{i}", i) for i in range(500)]) for t in range(4)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(own) == 2000
