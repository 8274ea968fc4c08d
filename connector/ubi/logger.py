"""The UBI event logger: query and event records written to ``ubi_queries`` / ``ubi_events`` in the background.

Like the search log (:mod:`connector.search.log`), a search never waits for, or fails because of,
its record: :class:`UbiLogger` puts each record on one bounded queue and returns at once; a daemon
thread sends them in ``_bulk`` requests (:class:`~connector.ubi.writer.BackgroundBulkWriter`).
Unlike the search log, what was accepted is meant to be kept (judgments and experiments are
counted from it): items the cluster answers 429 for, and batches that could not be sent, are resent
up to ``max_retries`` times with jittered backoff before they are counted as ``failed``.

    with UbiLogger(cluster) as ubi:
        ubi.log_query(UbiQuery(query_id=..., user_query="red tent", query_response_hit_ids=[...]))
        accepted = ubi.offer(events)      # POST /events: 429 for the ones not accepted
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from connector.cluster.client import Cluster
from connector.ubi.records import UbiEvent, UbiQuery, parse_event, parse_query
from connector.ubi.writer import BackgroundBulkWriter
from mappings.system import UBI_EVENTS_INDEX, UBI_QUERIES_INDEX, ubi_events_index_body, ubi_queries_index_body

__all__ = ["UbiLogger"]

logger = logging.getLogger(__name__)


class UbiLogger(BackgroundBulkWriter):
    """Writes UBI query and event records without ever blocking the caller.

    Args:
        cluster: where ``ubi_queries`` / ``ubi_events`` live (created on first write with the bodies of
            :mod:`mappings.system`; an existing index, e.g. the OpenSearch UBI plugin's, is used as it is).
        queries_index, events_index: the index names.
        queue_size, batch_size, flush_interval_s, max_retries: see
            :class:`~connector.ubi.writer.BackgroundBulkWriter` (``written``, ``dropped`` and ``failed`` too).
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
        self.queries_index = queries_index
        self.events_index = events_index
        super().__init__(
            cluster,
            index_bodies={queries_index: ubi_queries_index_body, events_index: ubi_events_index_body},
            name="ubi-logger",
            queue_size=queue_size,
            batch_size=batch_size,
            flush_interval_s=flush_interval_s,
            max_retries=max_retries,
        )

    # -- caller side ----------------------------------------------------------------
    def log_query(self, record: UbiQuery | Mapping[str, Any]) -> bool:
        """Queue one query record; never blocks and never raises. Returns whether it was queued."""
        try:
            doc = parse_query(record).to_doc()
        except Exception:  # a bad record must not fail the search that produced it
            logger.warning("ubi query record dropped: it is not a valid query record", exc_info=True)
            self._count_drop("an invalid record", 1)
            return False
        return self.put(self.queries_index, doc)

    def log_event(self, record: UbiEvent | Mapping[str, Any]) -> bool:
        """Queue one event record; never blocks and never raises. Returns whether it was queued."""
        try:
            doc = parse_event(record).to_doc()
        except Exception:
            logger.warning("ubi event record dropped: it is not a valid event record", exc_info=True)
            self._count_drop("an invalid record", 1)
            return False
        return self.put(self.events_index, doc)

    def offer(self, records: Sequence[UbiQuery | UbiEvent]) -> int:
        """Queue already validated records in order until the queue is full; never blocks.

        Returns:
            How many were queued (the first ``n``); the rest were not taken (counted in ``dropped``)
            and the caller answers them 429.
        """
        return self.put_many(
            [(self.queries_index if isinstance(r, UbiQuery) else self.events_index, r.to_doc()) for r in records]
        )
