"""Opt-in search log: one document per hybrid search, written in the background.

A search must never wait for, or fail because of, its log line. :class:`SearchLogger`
puts each record on a bounded queue and returns at once; a daemon thread drains the
queue and sends the records to the log index in ``_bulk`` requests. When the queue is
full the record is dropped and counted (``dropped``, logged at WARNING); when the
cluster is down or refuses a batch, the batch is dropped and counted (``failed``).
Nothing is retried: a log is worth less than the search latency it would cost.

    logger = SearchLogger(cluster, hash_queries=True)
    logger.log({"query": "red tent", "index": "products", "mode": "hybrid", ...})
    logger.close()

The log index is an ordinary index (see :func:`search_log_mapping`), so Kibana and
OpenSearch Dashboards show it with the data view from :mod:`connector.kibana`.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Final, TypedDict

from connector.cluster.client import Cluster, JsonDict
from connector.errors import EshybridError
from connector.ubi.writer import BackgroundBulkWriter
from mappings.system import SEARCH_LOG_LATENCY_STAGES as LATENCY_STAGES
from mappings.system import SEARCH_LOG_MAPPING_VERSION, search_log_index_body, search_log_mapping

__all__ = [
    "DEFAULT_SEARCH_LOG_INDEX",
    "LATENCY_STAGES",
    "SEARCH_LOG_MAPPING_VERSION",
    "SearchLatencyMs",
    "SearchLogRecord",
    "SearchLogger",
    "prepare_search_log_doc",
    "record_from_response",
    "search_log_index_body",
    "search_log_mapping",
]

logger = logging.getLogger(__name__)

DEFAULT_SEARCH_LOG_INDEX: Final = "eshybrid-search-log"


class SearchLatencyMs(TypedDict, total=False):
    """Milliseconds spent in each stage of one search (a stage that did not run is left out)."""

    correct: float
    embed: float
    search: float
    fuse: float
    fetch: float
    rerank: float
    total: float


class SearchLogRecord(TypedDict, total=False):
    """What one search log document holds (every key optional; ``timestamp`` is filled in).

    Attributes:
        timestamp: ISO 8601 UTC time the search started.
        query: the user's text (left out when the logger hashes queries).
        query_sha256: sha256 hex of the user's text (always written).
        index: the index (or alias) searched.
        mode: ``bm25`` | ``knn`` | ``hybrid`` | ``hybrid+rerank``.
        strategy: ``client`` (fused in Python) | ``server`` (one request) | ``single``.
        fusion: the fusion used, e.g. ``rrf(k=60, w=1/1)`` (absent for one-leg modes).
        latency_ms: time spent per stage.
        hit_count: hits returned to the caller.
        total_hits: hits the cluster matched, when known.
        rerank_fallback: the reranker failed or timed out and the fused order was kept.
        personal_weight: the personal signal's effective weight, when the search was personalized.
        user_sha256: sha256 hex of the shopper id asked for (never the id itself).
        corrected_query: the spelling-corrected text that was searched (absent: unchanged).
        did_you_mean: the suggestion offered to the user (absent: none).
        corrected_terms: ``original->corrected`` per changed word.
        rewrite_fallback: the query rewriter failed or timed out and the original text was searched.
        query_id: the response's UUID (the key the shoppers' events join on).
        vector_fallback: a helper (query or image embedder, profile read) failed and its signal was left out.
        vector_fallback_reason: which helper, and why.
        round_trips: the sequential cluster round trips of the search.
        lexical_weight: the adaptive fusion's lexical share for this query (absent for rrf, linear, one leg).
        vector_weight: the vector leg's share.
        coverage: the adaptive fusion's evidence: the share of the query's content words in the index.
    """

    timestamp: str
    query: str
    query_sha256: str
    index: str
    mode: str
    strategy: str
    fusion: str
    latency_ms: SearchLatencyMs
    hit_count: int
    total_hits: int
    rerank_fallback: bool
    personal_weight: float
    user_sha256: str
    corrected_query: str
    did_you_mean: str
    corrected_terms: list[str]
    rewrite_fallback: bool
    query_id: str
    vector_fallback: bool
    vector_fallback_reason: str
    round_trips: int
    lexical_weight: float
    vector_weight: float
    coverage: float


# -- the log documents (the index body is mappings.system.search_log_index_body) ------------


def prepare_search_log_doc(record: Mapping[str, Any], *, hash_queries: bool, now: datetime | None = None) -> JsonDict:
    """Turn a record into the document to index (pure).

    Args:
        record: a :class:`SearchLogRecord`-shaped mapping.
        hash_queries: drop the query text and keep only its sha256.
        now: the timestamp to use when the record has none (default: the current UTC time).

    Returns:
        A new dict; the caller's record is not changed.
    """
    doc: JsonDict = dict(record)
    if not doc.get("timestamp"):
        doc["timestamp"] = (now or datetime.now(UTC)).isoformat(timespec="milliseconds")
    elif isinstance(doc["timestamp"], datetime):
        doc["timestamp"] = doc["timestamp"].isoformat(timespec="milliseconds")
    query = doc.get("query")
    if isinstance(query, str):
        doc["query_sha256"] = hashlib.sha256(query.encode("utf-8")).hexdigest()
        if hash_queries:
            del doc["query"]
    if hash_queries:  # the corrected text and the suggestion tell the query as well
        for key in ("corrected_query", "did_you_mean", "corrected_terms"):
            doc.pop(key, None)
    latency = doc.get("latency_ms")
    if isinstance(latency, Mapping):
        doc["latency_ms"] = {k: float(v) for k, v in latency.items() if v is not None}
    return doc


def record_from_response(response: Any, *, timestamp: datetime | None = None) -> SearchLogRecord:
    """The log record of a :class:`connector.search.models.SearchResponse` (read by attribute).

    Args:
        response: the response of one search.
        timestamp: when the search started (default: now, UTC).
    """
    timings = getattr(response, "timings", None)
    latency: SearchLatencyMs = {}
    for stage in LATENCY_STAGES:
        value = getattr(timings, f"{stage}_ms", None)
        if value is not None:
            latency[stage] = float(value)
    record: SearchLogRecord = {
        "timestamp": (timestamp or datetime.now(UTC)).isoformat(timespec="milliseconds"),
        "query": str(getattr(response, "query", "")),
        "index": str(getattr(response, "index", "")),
        "mode": str(getattr(response, "mode", "")),
        "strategy": str(getattr(response, "strategy", "")),
        "latency_ms": latency,
        "hit_count": len(getattr(response, "hits", []) or []),
        "rerank_fallback": bool(getattr(response, "rerank_fallback", False)),
        "vector_fallback": bool(getattr(response, "vector_fallback", False)),
    }
    for key in ("query_id", "vector_fallback_reason", "round_trips"):
        value = getattr(response, key, None)
        if isinstance(value, str | int) and not isinstance(value, bool):
            record[key] = value
    user = getattr(response, "user", None)
    if isinstance(user, str):
        record["user_sha256"] = hashlib.sha256(user.encode("utf-8")).hexdigest()
    personal_weight = getattr(response, "personal_weight", None)
    if isinstance(personal_weight, int | float):
        record["personal_weight"] = float(personal_weight)
    correction = getattr(response, "correction", None)
    if getattr(response, "corrected_query", None):
        record["corrected_query"] = str(response.corrected_query)
    if getattr(response, "did_you_mean", None):
        record["did_you_mean"] = str(response.did_you_mean)
    if correction is not None:
        changed = [f"{c.original}->{c.suggestion}" for c in correction.changes if c.applied]
        if changed:
            record["corrected_terms"] = changed
        if correction.rewrite_fallback:
            record["rewrite_fallback"] = True
    fusion = getattr(response, "fusion", None)
    if fusion is not None and record["mode"] not in ("bm25", "knn"):
        record["fusion"] = fusion.describe() if hasattr(fusion, "describe") else str(fusion)
    weights = getattr(response, "fusion_weights", None)
    if weights is not None:
        record["lexical_weight"] = float(weights.lexical)
        record["vector_weight"] = float(weights.vector)
        if weights.coverage is not None:
            record["coverage"] = float(weights.coverage)
    return record


# -- the writer ---------------------------------------------------------------------


class SearchLogger(BackgroundBulkWriter):
    """Writes one document per search to a log index without ever blocking the search.

    The queue, the background ``_bulk`` writes and the counts are :class:`~connector.ubi.writer.
    BackgroundBulkWriter`'s (the UBI logger's too), with no resends: a log line is worth less than the
    search latency a resend could cost.

    Args:
        cluster: where the log index lives (often the cluster searched).
        index: the log index; created with :func:`search_log_index_body` on first write.
        hash_queries: store the sha256 of the query instead of its text (privacy).
        queue_size: records waiting to be written; a record beyond it is dropped.
        batch_size: records per ``_bulk`` request.
        flush_interval_s: longest time a record waits for its batch to fill.

    Attributes:
        written: documents the cluster accepted.
        dropped: records dropped because the queue was full.
        failed: records lost because the cluster refused or could not be reached.
    """

    def __init__(
        self,
        cluster: Cluster,
        index: str = DEFAULT_SEARCH_LOG_INDEX,
        hash_queries: bool = False,
        *,
        queue_size: int = 10_000,
        batch_size: int = 500,
        flush_interval_s: float = 1.0,
    ) -> None:
        self.index = index
        self.hash_queries = hash_queries
        super().__init__(
            cluster,
            index_bodies={index: search_log_index_body},
            name=f"search-log[{index}]",
            queue_size=queue_size,
            batch_size=batch_size,
            flush_interval_s=flush_interval_s,
            max_retries=0,
        )

    def __repr__(self) -> str:
        return (
            f"SearchLogger(index={self.index!r}, written={self.written}, dropped={self.dropped}, failed={self.failed})"
        )

    def _add_new_fields(self, index: str) -> None:
        """Map the fields a later version added to a log index an older one created (additive, idempotent)."""
        try:
            self.cluster.put_mapping(index, search_log_mapping())
        except EshybridError as e:  # the records still land in _source (dynamic: false)
            logger.warning("search log %s: could not map the new fields: %s", index, e)

    def log(self, record: Mapping[str, Any]) -> None:
        """Queue one record; never blocks and never raises.

        Args:
            record: a :class:`SearchLogRecord`-shaped mapping (copied before it is queued).
        """
        try:
            doc = prepare_search_log_doc(record, hash_queries=self.hash_queries)
        except Exception:  # a bad record must not fail the search that produced it
            logger.warning("search log record dropped: it could not be prepared", exc_info=True)
            self._count_drop("an unreadable record", 1)
            return
        self.put(self.index, doc)

    def log_response(self, response: Any) -> None:
        """Queue the record of a ``SearchResponse`` (see :func:`record_from_response`); never raises."""
        try:
            record = record_from_response(response)
        except Exception:
            logger.warning("search log record dropped: the response could not be read", exc_info=True)
            self._count_drop("an unreadable response", 1)
            return
        self.log(record)
