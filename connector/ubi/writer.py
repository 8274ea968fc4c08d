"""A bounded queue drained into ``_bulk`` requests by a daemon thread: the writer behind the UBI logger.

The caller never blocks: :meth:`BackgroundBulkWriter.put` returns False (and counts the record in
``dropped``) when the queue is full or the writer closed. The thread sends batches of
``batch_size`` (or what arrived within ``flush_interval_s``); items the cluster answers 429 for,
and batches that could not be sent (connection errors, 429/502/503/504), are resent up to
``max_retries`` times with jittered exponential backoff, then counted in ``failed``. Each target
index is created on first write from its body builder (an existing index is used as it is).
"""

from __future__ import annotations

import logging
import queue
import random
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Final, Self

from connector.cluster.client import Cluster, JsonDict
from connector.errors import ClusterApiError, ClusterConnectionError, ConfigError, EshybridError

__all__ = ["BackgroundBulkWriter", "Item"]

logger = logging.getLogger(__name__)

_STOP: Final = object()  # queue sentinel: send what is left, then end the thread
_BACKOFF_S: Final = 0.2
_MAX_BACKOFF_S: Final = 5.0

Item = tuple[str, JsonDict]  # (index, document)


class BackgroundBulkWriter:
    """Writes documents to their indexes in the background, never blocking the caller.

    Args:
        cluster: where the indexes live.
        index_bodies: ``{index: body builder}``; an index is created with its body on first write.
        name: the thread's name and the log lines' prefix.
        queue_size: documents waiting to be written; beyond it a document is refused (``dropped``).
        batch_size: documents per ``_bulk`` request.
        flush_interval_s: longest time a document waits for its batch to fill.
        max_retries: resends of 429 items or of an unsent batch before they count as ``failed``.

    Attributes:
        written: documents the cluster accepted.
        dropped: documents refused (queue full, writer closed, or unreadable).
        failed: accepted documents that could not be written (after the resends).
    """

    def __init__(
        self,
        cluster: Cluster,
        *,
        index_bodies: Mapping[str, Callable[[], JsonDict]],
        name: str,
        queue_size: int = 10_000,
        batch_size: int = 500,
        flush_interval_s: float = 0.5,
        max_retries: int = 3,
    ) -> None:
        if queue_size < 1 or batch_size < 1 or flush_interval_s <= 0 or max_retries < 0:
            raise ConfigError(
                f"{name} needs queue_size >= 1, batch_size >= 1, flush_interval_s > 0 and max_retries >= 0, got "
                f"{queue_size}, {batch_size}, {flush_interval_s}, {max_retries}",
                field="queue_size",
            )
        self.cluster = cluster
        self.name = name
        self.queue_size = queue_size
        self.batch_size = batch_size
        self.flush_interval_s = flush_interval_s
        self.max_retries = max_retries
        self.written = 0
        self.dropped = 0
        self.failed = 0
        self._queue: queue.Queue[object] = queue.Queue(maxsize=queue_size)
        self._bodies = dict(index_bodies)
        self._ready: set[str] = set()
        self._closed = False
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name=f"eshybrid-{name}", daemon=True)
        self._thread.start()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(written={self.written}, dropped={self.dropped}, failed={self.failed})"

    @property
    def queued(self) -> int:
        """Documents waiting to be sent."""
        return self._queue.qsize()

    def put(self, index: str, doc: JsonDict) -> bool:
        """Queue one document; never blocks. Returns whether it was queued (else counted in ``dropped``)."""
        return self._put((index, doc))

    def put_many(self, items: Sequence[Item]) -> int:
        """Queue documents in order until the queue is full; returns how many (the rest count as ``dropped``)."""
        for n, item in enumerate(items):
            if not self._put(item, count=False):
                self._count_drop("the queue is full", len(items) - n)
                return n
        return len(items)

    def _put(self, item: Item, *, count: bool = True) -> bool:
        if self._closed:
            if count:
                self._count_drop("the logger is closed", 1)
            return False
        try:
            self._queue.put_nowait(item)
        except queue.Full:
            if count:
                self._count_drop("the queue is full", 1)
            return False
        return True

    def flush(self, *, timeout_s: float = 10.0) -> bool:
        """Wait until every queued record has been sent (or given up); True when done in time."""
        deadline = time.monotonic() + timeout_s
        while self._queue.unfinished_tasks:
            if time.monotonic() >= deadline or not self._thread.is_alive():
                return False
            time.sleep(0.01)
        return True

    def close(self, *, timeout_s: float = 10.0) -> None:
        """Send what is queued and stop the thread (waits at most ``timeout_s``); never raises."""
        if self._closed:
            return
        self._closed = True
        deadline = time.monotonic() + timeout_s
        while self._thread.is_alive():
            try:
                self._queue.put(_STOP, timeout=0.05)
                break
            except queue.Full:
                if time.monotonic() >= deadline:
                    break
        self._thread.join(max(0.0, deadline - time.monotonic()))
        if self._thread.is_alive():
            logger.warning("%s still busy after %.1fs; %d records not sent", self.name, timeout_s, self.queued)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _count_drop(self, why: str, n: int) -> None:
        with self._lock:
            before = self.dropped
            self.dropped += n
        # The first drop, then one line per 1000: a full queue under load must not flood the log.
        if before == 0 or before // 1000 != self.dropped // 1000:
            logger.warning("%s: records refused: %s (%d refused so far)", self.name, why, self.dropped)

    # -- writer side (the background thread) ----------------------------------------
    def _run(self) -> None:
        stop = False
        while not stop:
            batch, stop = self._next_batch()
            if batch:
                try:
                    self._write(batch)
                except Exception as e:  # the thread must survive anything a batch can throw
                    self._count_failed(len(batch), f"unexpected {type(e).__name__}: {e}")
            for _ in range(len(batch) + (1 if stop else 0)):
                self._queue.task_done()

    def _next_batch(self) -> tuple[list[Item], bool]:
        first = self._queue.get()
        if first is _STOP:
            return [], True
        batch: list[Item] = [first]  # type: ignore[list-item]
        deadline = time.monotonic() + self.flush_interval_s
        while len(batch) < self.batch_size:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            try:
                item = self._queue.get(timeout=remaining)
            except queue.Empty:
                break
            if item is _STOP:
                return batch, True
            batch.append(item)  # type: ignore[arg-type]
        return batch, False

    def _write(self, batch: list[Item]) -> None:
        pending = batch
        for attempt in range(self.max_retries + 1):
            if attempt:
                pause = min(_MAX_BACKOFF_S, _BACKOFF_S * 2 ** (attempt - 1))
                time.sleep(pause * (0.5 + random.random()))  # jitter: resenders must not move in step
            try:
                pending, refused = self._send(pending)
            except (ClusterConnectionError, ClusterApiError) as e:
                busy = isinstance(e, ClusterConnectionError) or e.status in (429, 502, 503, 504)
                if not busy or attempt == self.max_retries:
                    self._count_failed(len(pending), f"{type(e).__name__}: {e}")
                    return
                logger.warning("%s: resending %d records (%s)", self.name, len(pending), e)
                continue
            except EshybridError as e:
                self._count_failed(len(pending), f"{type(e).__name__}: {e}")
                return
            if refused:
                self._count_failed(len(refused), refused[0])
            if not pending:
                return
            logger.warning("%s: resending %d records the cluster answered 429 for", self.name, len(pending))
        self._count_failed(len(pending), "the cluster answered 429 after every resend")

    def _send(self, items: list[Item]) -> tuple[list[Item], list[str]]:
        """One ``_bulk``; returns the items to resend (429) and the reasons of the refused ones."""
        for index in {index for index, _ in items}:
            self._ensure_index(index)
        lines: list[JsonDict] = []
        for index, doc in items:
            lines.append({"index": {"_index": index}})
            lines.append(doc)
        result = self.cluster.bulk(lines)
        retry: list[Item] = []
        refused: list[str] = []
        ok = 0
        for item, answer in zip(items, result.get("items", [])):
            outcome = next(iter(answer.values()))
            error = outcome.get("error")
            if not error:
                ok += 1
            elif outcome.get("status") == 429:
                retry.append(item)
            else:
                refused.append(f"bulk item error {error.get('type')}: {error.get('reason')}")
        with self._lock:
            self.written += ok
        return retry, refused

    def _count_failed(self, n: int, why: str) -> None:
        with self._lock:
            self.failed += n
            failed = self.failed
        logger.warning("%s: %d records not written (%s); %d lost so far", self.name, n, why, failed)

    def _ensure_index(self, index: str) -> None:
        if index in self._ready:
            return
        # HEAD also answers for an alias, which the caller may point at a rolled-over index.
        if self.cluster.index_exists(index):
            self._add_new_fields(index)
        else:
            try:
                self.cluster.create_index(index, self._bodies[index]())
            except ClusterApiError as e:
                if e.error_type != "resource_already_exists_exception":
                    raise
        self._ready.add(index)

    def _add_new_fields(self, index: str) -> None:
        """An index that exists already is used as it is (the UBI plugin's, or another owner's); a subclass whose
        index is its own maps the fields a later version added here (the search log)."""
