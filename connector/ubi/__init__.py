"""Shoppers' searches and actions as User Behavior Insights (UBI 1.x) records: models, JSON lines, the logger.

Below :mod:`connector.search` in the layer order, so the search path records its query records
here; the tools that read the records (click models, judgments, experiments) live in
:mod:`connector.feedback`.
"""

from __future__ import annotations

from connector.ubi.interleave import Interleaved, SearchOutcome, assign_arm, credit_clicks, team_draft
from connector.ubi.jsonl import read_events_jsonl, read_jsonl, read_queries_jsonl, write_jsonl
from connector.ubi.logger import UbiLogger
from connector.ubi.records import (
    ACTIONS,
    EventAttributes,
    EventObject,
    EventPosition,
    QueryAttributes,
    UbiEvent,
    UbiQuery,
    parse_event,
    parse_query,
    query_record_from_response,
)
from connector.ubi.writer import BackgroundBulkWriter

__all__ = [
    "ACTIONS",
    "EventAttributes",
    "EventObject",
    "EventPosition",
    "QueryAttributes",
    "UbiEvent",
    "BackgroundBulkWriter",
    "UbiLogger",
    "UbiQuery",
    "parse_event",
    "parse_query",
    "query_record_from_response",
    "Interleaved",
    "SearchOutcome",
    "assign_arm",
    "credit_clicks",
    "team_draft",
    "read_events_jsonl",
    "read_jsonl",
    "read_queries_jsonl",
    "write_jsonl",
]
