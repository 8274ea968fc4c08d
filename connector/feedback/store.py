"""UBI records in a cluster: read ``ubi_queries`` / ``ubi_events`` (a point-in-time scan), import and export JSON lines.

Reading skips a stored document that is not a valid record (another writer's, an old shape),
counting it, so one odd document never stops a judgments run.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from connector.cluster.client import Cluster, JsonDict
from connector.errors import ClusterApiError, RecordValidationError
from connector.jobs.bulk import BulkAction, streaming_bulk
from connector.jobs.dialect import dialect_for
from connector.jobs.sources import PitSliceSource
from connector.ubi.jsonl import read_events_jsonl, read_queries_jsonl, write_jsonl
from connector.ubi.records import UbiEvent, UbiQuery, parse_event, parse_query
from mappings.system import UBI_EVENTS_INDEX, UBI_QUERIES_INDEX, ubi_events_index_body, ubi_queries_index_body

__all__ = ["RecordCounts", "export_records", "import_records", "read_events", "read_queries"]

logger = logging.getLogger(__name__)

_PAGE = 1000


@dataclass
class RecordCounts:
    """What an import or export moved (``skipped``: stored documents that were not valid records)."""

    queries: int = 0
    events: int = 0
    failed: int = 0
    skipped: int = 0

    def to_json(self) -> dict[str, int]:
        return {"queries": self.queries, "events": self.events, "failed": self.failed, "skipped": self.skipped}


def _scan(cluster: Cluster, index: str, query: JsonDict | None) -> Iterator[JsonDict]:
    dialect = dialect_for(cluster)
    pit_id = dialect.open_pit(cluster, index, keep_alive="2m")
    source = PitSliceSource(
        key=index,
        cluster=cluster,
        dialect=dialect,
        index=index,
        pit_id=pit_id,
        keep_alive="2m",
        page_size=_PAGE,
        source_includes=None,
        query=query,
    )
    source.opened_pits.append(pit_id)
    try:
        for hits, _, _, _ in source.pages():
            for hit in hits:
                yield hit.get("_source") or {}
    finally:
        source.close()


def _records(
    cluster: Cluster, index: str, parse: Any, query: JsonDict | None, counts: RecordCounts | None
) -> Iterator[Any]:
    if not cluster.index_exists(index):
        return
    for doc in _scan(cluster, index, query):
        try:
            yield parse(doc)
        except RecordValidationError as e:
            if counts is not None:
                counts.skipped += 1
            logger.debug("skipped a document of %s: %s", index, e)


def read_queries(
    cluster: Cluster,
    index: str = UBI_QUERIES_INDEX,
    *,
    query: JsonDict | None = None,
    counts: RecordCounts | None = None,
) -> Iterator[UbiQuery]:
    """Stream the query records of ``index`` (none when it does not exist); ``query`` filters them."""
    return _records(cluster, index, parse_query, query, counts)


def read_events(
    cluster: Cluster,
    index: str = UBI_EVENTS_INDEX,
    *,
    query: JsonDict | None = None,
    counts: RecordCounts | None = None,
) -> Iterator[UbiEvent]:
    """Stream the event records of ``index`` (none when it does not exist); ``query`` filters them."""
    return _records(cluster, index, parse_event, query, counts)


def _ensure(cluster: Cluster, index: str, body: JsonDict) -> None:
    if cluster.index_exists(index):
        return
    try:
        cluster.create_index(index, body)
    except ClusterApiError as e:
        if e.error_type != "resource_already_exists_exception":
            raise


def _bulk(cluster: Cluster, index: str, records: Iterable[UbiQuery | UbiEvent]) -> tuple[int, int]:
    ok = failed = 0
    actions = (BulkAction("index", {"_index": index}, r.to_doc()) for r in records)
    for result in streaming_bulk(cluster, actions, max_docs=1000, max_bytes=5 * 1024 * 1024):
        if result.ok:
            ok += 1
        else:
            failed += 1
    return ok, failed


def import_records(
    cluster: Cluster,
    *,
    queries_jsonl: str | Path | None = None,
    events_jsonl: str | Path | None = None,
    queries_index: str = UBI_QUERIES_INDEX,
    events_index: str = UBI_EVENTS_INDEX,
) -> RecordCounts:
    """Validate JSON-lines files and bulk-index them (indexes created on first use), then refresh.

    Raises:
        RecordValidationError: a line is not a valid record (nothing after it is sent).
    """
    counts = RecordCounts()
    if queries_jsonl is not None:
        _ensure(cluster, queries_index, ubi_queries_index_body())
        counts.queries, failed = _bulk(cluster, queries_index, read_queries_jsonl(queries_jsonl))
        counts.failed += failed
        cluster.refresh(queries_index)
    if events_jsonl is not None:
        _ensure(cluster, events_index, ubi_events_index_body())
        counts.events, failed = _bulk(cluster, events_index, read_events_jsonl(events_jsonl))
        counts.failed += failed
        cluster.refresh(events_index)
    return counts


def export_records(
    cluster: Cluster,
    *,
    queries_jsonl: str | Path | None = None,
    events_jsonl: str | Path | None = None,
    queries_index: str = UBI_QUERIES_INDEX,
    events_index: str = UBI_EVENTS_INDEX,
) -> RecordCounts:
    """Write the records of the indexes as JSON lines (documents that are not valid records are skipped)."""
    counts = RecordCounts()
    if queries_jsonl is not None:
        counts.queries = write_jsonl(queries_jsonl, read_queries(cluster, queries_index, counts=counts))
    if events_jsonl is not None:
        counts.events = write_jsonl(events_jsonl, read_events(cluster, events_index, counts=counts))
    return counts
