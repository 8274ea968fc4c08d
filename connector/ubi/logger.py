"""The UBI event logger: query and event records written to ``ubi_queries`` / ``ubi_events`` in the background.

Like the search log (:mod:`connector.search.log`), a search never waits for, or fails because of,
its record: :class:`UbiLogger` puts each record on one bounded queue and returns at once; a daemon
thread sends them in ``_bulk`` requests. Unlike the search log, what was accepted is meant to be
kept (judgments and experiments are counted from it): items the cluster answers 429 for, and
batches that could not be sent, are resent up to ``max_retries`` times with jittered backoff
before they are counted as ``failed``.

    with UbiLogger(cluster) as ubi:
        ubi.log_query(UbiQuery(query_id=..., user_query="red tent", query_response_hit_ids=[...]))
        accepted = ubi.offer(events)      # POST /events: 429 for the ones not accepted
"""

from __future__ import annotations

import logging
import queue
import random
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final

from connector.cluster.client import Cluster, JsonDict
from connector.errors import ClusterApiError, ClusterConnectionError, ConfigError, EshybridError
from connector.ubi.records import UbiEvent, UbiQuery, parse_event, parse_query
from mappings.system import UBI_EVENTS_INDEX, UBI_QUERIES_INDEX, ubi_events_index_body, ubi_queries_index_body

__all__ = ["UbiLogger"]

logger = logging.getLogger(__name__)

_STOP: Final = object()  # queue sentinel: send what is left, then end the thread
_BACKOFF_S: Final = 0.2
_MAX_BACKOFF_S: Final = 5.0

Item = tuple[str, JsonDict]  # (index, document)


class UbiLogger:
    """Writes UBI query and event records without ever blocking the caller.

    Args:
        cluster: where ``ubi_queries`` / ``ubi_events`` live (created on first write with the bodies of
            :mod:`mappings.system`; an existing index, e.g. the OpenSearch UBI plugin's, is used as it is).
        queries_index, events_index: the index names.
        queue_size: records waiting to be written; beyond it a record is refused (``dropped``).
        batch_size: records per ``_bulk`` request.
        flush_interval_s: longest time a record waits for its batch to fill.
        max_retries: resends of 429 items or of an unsent batch before they count as ``failed``.

    Attributes:
        written: records the cluster accepted.
        dropped: records refused because the queue was full (or the logger closed, or unreadable).
        failed: accepted records that could not be written (after the resends).
    """

    def __init__(
        self,
        cluster: Cluster,
        *,
        queries_index: str = UBI_QUERIES_INDEX,
        events_index: str = UBI_EVENTS_INDEX,
        queue_size: int = 10_000,
        batch_size: int = 500,
        flush_interval_s: float = 0.5,
        max_retries: int = 3,
    ) -> None:
        if queue_size < 1 or batch_size < 1 or flush_interval_s <= 0 or max_retries < 0:
            raise ConfigError(
                "UbiLogger needs queue_size >= 1, batch_size >= 1, flush_interval_s > 0 and max_retries >= 0, got "
                f"{queue_size}, {batch_size}, {flush_interval_s}, {max_retries}",
                field="queue_size",
            )
        self.cluster = cluster
        self.queries_index = queries_index
        self.events_index = events_index
        self.queue_size = queue_size
        self.batch_size = batch_size
        self.flush_interval_s = flush_interval_s
        self.max_retries = max_retries
        self.written = 0
        self.dropped = 0
        self.failed = 0
        self._queue: queue.Queue[object] = queue.Queue(maxsize=queue_size)
        self._bodies: dict[str, Callable[[], JsonDict]] = {
            queries_index: ubi_queries_index_body,
            events_index: ubi_events_index_body,
        }
        self._ready: set[str] = set()
        self._closed = False
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="eshybrid-ubi-logger", daemon=True)
        self._thread.start()

    def __repr__(self) -> str:
        return f"UbiLogger(written={self.written}, dropped={self.dropped}, failed={self.failed})"

    @property
    def queued(self) -> int:
        """Records waiting to be sent."""
        return self._queue.qsize()

    # -- caller side ----------------------------------------------------------------
    def log_query(self, record: UbiQuery | Mapping[str, Any]) -> bool:
        """Queue one query record; never blocks and never raises. Returns whether it was queued."""
        try:
            doc = parse_query(record).to_doc()
        except Exception:  # a bad record must not fail the search that produced it
            logger.warning("ubi query record dropped: it is not a valid query record", exc_info=True)
            self._count_drop("an invalid record", 1)
            return False
        return self._put((self.queries_index, doc))

    def log_event(self, record: UbiEvent | Mapping[str, Any]) -> bool:
        """Queue one event record; never blocks and never raises. Returns whether it was queued."""
        try:
            doc = parse_event(record).to_doc()
        except Exception:
            logger.warning("ubi event record dropped: it is not a valid event record", exc_info=True)
            self._count_drop("an invalid record", 1)
            return False
        return self._put((self.events_index, doc))

    def offer(self, records: Sequence[UbiQuery | UbiEvent]) -> int:
        """Queue already validated records in order until the queue is full; never blocks.

        Returns:
            How many were queued (the first ``n``); the rest were not taken (counted in ``dropped``)
            and the caller answers them 429.
        """
        for n, record in enumerate(records):
            index = self.queries_index if isinstance(record, UbiQuery) else self.events_index
            if not self._put((index, record.to_doc()), count=False):
                self._count_drop("the queue is full", len(records) - n)
                return n
        return len(records)

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
            logger.warning("ubi logger still busy after %.1fs; %d records not sent", timeout_s, self.queued)

    def __enter__(self) -> UbiLogger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _count_drop(self, why: str, n: int) -> None:
        with self._lock:
            before = self.dropped
            self.dropped += n
        # The first drop, then one line per 1000: a full queue under load must not flood the log.
        if before == 0 or before // 1000 != self.dropped // 1000:
            logger.warning("ubi records refused: %s (%d refused so far)", why, self.dropped)

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
                logger.warning("ubi logger: resending %d records (%s)", len(pending), e)
                continue
            except EshybridError as e:
                self._count_failed(len(pending), f"{type(e).__name__}: {e}")
                return
            if refused:
                self._count_failed(len(refused), refused[0])
            if not pending:
                return
            logger.warning("ubi logger: resending %d records the cluster answered 429 for", len(pending))
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
        logger.warning("ubi logger: %d records not written (%s); %d lost so far", n, why, failed)

    def _ensure_index(self, index: str) -> None:
        if index in self._ready:
            return
        if not self.cluster.index_exists(index):
            try:
                self.cluster.create_index(index, self._bodies[index]())
            except ClusterApiError as e:
                if e.error_type != "resource_already_exists_exception":
                    raise
        self._ready.add(index)
