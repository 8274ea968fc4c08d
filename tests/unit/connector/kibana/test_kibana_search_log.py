"""The search log's pure parts: the index mapping the dashboards read, and the document of a record."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from types import SimpleNamespace

import pytest

from connector.cluster.client import Cluster
from connector.errors import ConfigError
from connector.kibana import mapping_fields
from connector.search.log import (
    LATENCY_STAGES,
    SearchLogger,
    prepare_search_log_doc,
    record_from_response,
    search_log_index_body,
    search_log_mapping,
)

NOW = datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)


def test_mapping_has_every_record_field() -> None:
    fields = mapping_fields(search_log_mapping())
    for name in ("timestamp", "query", "query.keyword", "query_sha256", "index", "mode", "strategy", "fusion",
                 "hit_count", "total_hits", "rerank_fallback"):  # fmt: skip
        assert name in fields
    assert {f"latency_ms.{stage}" for stage in LATENCY_STAGES} <= set(fields)
    assert fields["timestamp"] == "date" and fields["rerank_fallback"] == "boolean"
    # An old index must never reject a record with a field a later version adds.
    assert search_log_mapping()["dynamic"] is False
    assert search_log_index_body()["mappings"] == search_log_mapping()


def test_doc_keeps_query_and_adds_its_hash() -> None:
    record = {"query": "red tent", "mode": "hybrid", "latency_ms": {"total": 12, "rerank": None}}
    doc = prepare_search_log_doc(record, hash_queries=False, now=NOW)
    assert doc["query"] == "red tent"
    assert doc["query_sha256"] == hashlib.sha256(b"red tent").hexdigest()
    assert doc["timestamp"] == "2026-01-02T03:04:05.678+00:00"
    assert doc["latency_ms"] == {"total": 12.0}
    assert record == {"query": "red tent", "mode": "hybrid", "latency_ms": {"total": 12, "rerank": None}}


def test_doc_hashes_query_when_asked() -> None:
    doc = prepare_search_log_doc({"query": "my private query", "timestamp": NOW}, hash_queries=True)
    assert "query" not in doc
    assert doc["query_sha256"] == hashlib.sha256(b"my private query").hexdigest()
    assert doc["timestamp"] == "2026-01-02T03:04:05.678+00:00"


def test_record_from_a_search_response() -> None:
    fusion = SimpleNamespace(describe=lambda: "rrf(k=60, w=1/1)")
    timings = SimpleNamespace(embed_ms=3.0, search_ms=10.0, fuse_ms=0.5, fetch_ms=0.0, rerank_ms=0.0, total_ms=14.0)
    response = SimpleNamespace(query="tent", index="products", mode="hybrid", strategy="client", fusion=fusion,
                               timings=timings, hits=[1, 2, 3], rerank_fallback=True)  # fmt: skip
    record = record_from_response(response, timestamp=NOW)
    assert record["fusion"] == "rrf(k=60, w=1/1)"
    assert record["latency_ms"] == {"embed": 3.0, "search": 10.0, "fuse": 0.5, "fetch": 0.0, "rerank": 0.0,
                                    "total": 14.0}  # fmt: skip
    assert record["hit_count"] == 3 and record["rerank_fallback"] is True
    assert set(record) - {"fusion"} <= set(mapping_fields(search_log_mapping())) | {"latency_ms"}
    bm25 = SimpleNamespace(**{**vars(response), "mode": "bm25"})
    assert "fusion" not in record_from_response(bm25)


def test_logger_options_are_validated() -> None:
    with pytest.raises(ConfigError):
        SearchLogger(Cluster("http://127.0.0.1:9"), queue_size=0)
