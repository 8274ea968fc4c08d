"""The search log on real clusters: N searches -> N documents; a full queue or a dead cluster
never blocks or fails the search that logs."""

from __future__ import annotations

import hashlib
import logging
import socket
import time
import uuid
from collections.abc import Iterator

import pytest

from connector.cluster.client import Cluster
from connector.search import HybridSearch
from connector.search.log import SearchLogger, search_log_mapping

pytestmark = [pytest.mark.integration]

N_SEARCHES = 40


@pytest.fixture
def cluster(cluster_url: str) -> Iterator[Cluster]:
    with Cluster(cluster_url) as c:
        yield c


@pytest.fixture
def log_index(cluster: Cluster) -> Iterator[str]:
    name = f"eshybrid-test-search-log-{uuid.uuid4().hex[:12]}"
    yield name
    cluster.delete_index(name)


def test_n_searches_give_n_documents(cluster: Cluster, index_name: str, log_index: str) -> None:
    """Real HybridSearch searches (BM25 mode: no embedding service needed), each logged from its response."""
    cluster.create_index(index_name, {"mappings": {"properties": {"title": {"type": "text"}}}})
    cluster.bulk([line for i in range(5) for line in ({"index": {"_index": index_name, "_id": str(i)}},
                                                      {"title": f"red tent {i}"})], refresh=True)  # fmt: skip
    search = HybridSearch(cluster, index_name)
    with SearchLogger(cluster, log_index, hash_queries=True, flush_interval_s=0.2, batch_size=16) as search_log:
        for i in range(N_SEARCHES):
            search_log.log_response(search.search(f"red tent {i % 7}", mode="bm25", size=3))
        assert search_log.flush(timeout_s=30)
    assert (search_log.written, search_log.dropped, search_log.failed) == (N_SEARCHES, 0, 0)
    cluster.refresh(log_index)
    assert cluster.count(log_index) == N_SEARCHES
    # The index was created with the log mapping, and the query text was hashed away.
    assert (
        cluster.get_mapping(log_index)["properties"]["latency_ms"] == search_log_mapping()["properties"]["latency_ms"]
    )
    hits = cluster.search(log_index, {"size": N_SEARCHES, "query": {"term": {"mode": "bm25"}}})["hits"]["hits"]
    assert len(hits) == N_SEARCHES
    assert all("query" not in h["_source"] for h in hits)
    assert all(h["_source"]["hit_count"] == 3 and h["_source"]["latency_ms"]["total"] > 0 for h in hits)
    sha = hashlib.sha256(b"red tent 0").hexdigest()
    assert cluster.count(log_index, {"term": {"query_sha256": sha}}) == len(range(0, N_SEARCHES, 7))


def test_a_full_queue_never_blocks(cluster: Cluster, log_index: str, caplog: pytest.LogCaptureFixture) -> None:
    search_log = SearchLogger(cluster, log_index, queue_size=8, batch_size=4, flush_interval_s=0.05)
    slowest = 0.0
    begun = time.perf_counter()
    with caplog.at_level(logging.WARNING, logger="connector.search.log"):
        for i in range(5000):
            started = time.perf_counter()
            search_log.log({"query": f"q{i}", "mode": "hybrid", "latency_ms": {"total": 1.0}})
            slowest = max(slowest, time.perf_counter() - started)
        elapsed = time.perf_counter() - begun
        search_log.close(timeout_s=30)
    assert search_log.dropped > 0, "5000 records into a queue of 8 should overflow"
    assert search_log.written + search_log.dropped + search_log.failed == 5000
    assert search_log.failed == 0
    # A bulk round trip takes tens of ms; a put on a shared 2-core machine can be descheduled for a
    # few ms, so the bounds leave room for that but not for waiting on the cluster.
    assert slowest < 0.25, f"log() took {slowest * 1000:.1f} ms: it must never wait for the cluster"
    assert elapsed < 5.0, f"5000 log() calls took {elapsed:.2f}s"
    assert any("queue is full" in r.getMessage() for r in caplog.records)
    cluster.refresh(log_index)
    assert cluster.count(log_index) == search_log.written


def _dead_url() -> str:
    """A loopback port nobody listens on."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def test_a_dead_cluster_never_raises_into_the_caller(caplog: pytest.LogCaptureFixture) -> None:
    dead = Cluster(_dead_url(), max_retries=0, request_timeout_s=1)
    with caplog.at_level(logging.WARNING, logger="connector.search.log"):
        search_log = SearchLogger(dead, "eshybrid-search-log", flush_interval_s=0.05, batch_size=5)
        started = time.perf_counter()
        for i in range(20):
            search_log.log({"query": f"q{i}", "mode": "bm25"})
        assert time.perf_counter() - started < 0.5
        assert search_log.flush(timeout_s=30)
        search_log.log({"query": "after the failures", "mode": "bm25"})  # still accepted, still no raise
        search_log.close(timeout_s=30)
    assert search_log.written == 0
    assert search_log.failed == 21
    assert any("not written" in r.getMessage() for r in caplog.records)
    search_log.log({"query": "after close"})  # a closed logger drops, never raises
    assert search_log.dropped == 1


def test_an_older_log_index_gets_the_new_fields_mapped(cluster: Cluster, log_index: str) -> None:
    """A log index an earlier version created (no query_id, no fusion weights) is given the new fields on first
    write, so Kibana can filter and chart them; the records written before keep their place."""
    old = search_log_mapping()
    old_properties = {k: v for k, v in old["properties"].items() if k not in ("query_id", "lexical_weight")}
    cluster.create_index(log_index, {"mappings": {**old, "properties": old_properties}})
    with SearchLogger(cluster, log_index, flush_interval_s=0.1) as search_log:
        search_log.log({"query": "head torch", "mode": "hybrid", "query_id": "q-1", "lexical_weight": 0.1})
        assert search_log.flush(timeout_s=30)
    assert (search_log.written, search_log.failed) == (1, 0)
    cluster.refresh(log_index)
    properties = cluster.get_mapping(log_index)["properties"]
    assert properties["query_id"] == {"type": "keyword"} and properties["lexical_weight"] == {"type": "float"}
    assert cluster.count(log_index, {"range": {"lexical_weight": {"lte": 0.2}}}) == 1
