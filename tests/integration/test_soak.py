"""A short soak of the serving path (issue 29): ``bench/soak.py``'s faults, in about a minute.

16 searches in flight against ``serve search`` (UBI on) while one embedding replica is SIGKILLed, the embedding
service is stopped and started again, the reranker is slowed past its budget and then stopped, the cluster
(behind a fault proxy) answers 429/503 to 10% of the searches and then answers 200 ms late, and a burst of
malformed requests arrives. Asserted: no 5xx (nor a dropped answer) from a helper's failure, every degraded
answer flagged, every malformed request a 4xx, each helper's searches recovered within 30 s of its return.
The faults really happened: degraded answers while the embedder was down, fallbacks while the reranker was slow.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import math
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import psutil
import pytest

from connector import connect
from connector.errors import ClusterError
from connector.search.hybrid import HybridSearch
from connector.search.rerank import RerankConfig
from connector.services.embedding import EmbeddingClient
from tests.fixtures.faultproxy import Faults, fault_proxy
from tests.fixtures.products import create_products_index
from tests.fixtures.soak import Driver, Workload, drive, phase_report, print_rows
from tests.fixtures.soak_stack import FAULT_PHASES, SoakStack

pytestmark = [pytest.mark.integration, pytest.mark.ray, pytest.mark.slow, pytest.mark.es9]

CATALOGUE = Path(__file__).resolve().parents[2] / "examples" / "catalogue"
UNIT_S = 1.5  # the schedule's unit: ~30 s of load, plus the two restarts
MAX_RECOVERY_S = 30.0


@pytest.fixture
def catalogue_index(es9_url: str, embed_url: str) -> Iterator[str]:
    """80 catalogue products with their vectors (the default model), keyword/number fields to filter on."""
    rows = [json.loads(line) for line in (CATALOGUE / "corpus.jsonl").read_text().splitlines()[:80]]
    index = f"test-soak-{uuid.uuid4().hex}"
    with connect(es9_url) as cluster, EmbeddingClient(embed_url) as embedder:
        fields = ("_id", "title", "text", "category", "price", "in_stock")
        extra = {"category": {"type": "keyword"}, "price": {"type": "float"}, "in_stock": {"type": "boolean"}}
        try:
            docs = [{k: row[k] for k in fields} for row in rows]
            create_products_index(cluster, index, embedder, docs, extra_properties=extra)
            yield index
        finally:
            cluster.request("DELETE", f"/{index}")


def test_the_serving_path_holds_under_faults(
    ray_serve: Any, es9_url: str, catalogue_index: str, cross_encoder_path: Path
) -> None:
    queries = [json.loads(line)["text"] for line in (CATALOGUE / "queries.jsonl").read_text().splitlines()]
    filters: list[dict[str, Any]] = [
        {"term": {"category": "camping"}},
        {"term": {"in_stock": True}},
        {"range": {"price": {"lte": 100}}},
    ]
    stack = SoakStack(
        ray_serve, es9_url, catalogue_index, cross_encoder_path, name=f"soak-{uuid.uuid4().hex[:6]}",
        # the session's Ray has 2 CPUs and its shared apps (embed, image, rerank) hold 0.5 each: 0.4 in all here
        embed_cpus=0.2, rerank_cpus=0.1, search_cpus=0.1,
        embed_budget_s=1.0, rerank_budget_s=1.0,  # a loaded CI machine: the faults, not the budgets, are the subject
    )  # fmt: skip
    try:
        stack.start()
        driver = Driver(stack.search_url, Workload(queries, filters), concurrency=16)
        phases = asyncio.run(drive(driver, lambda burst: stack.steps(UNIT_S, burst=burst, warmup_units=1.5)))
    finally:
        stack.close()

    rows, figures = phase_report(driver.samples, phases, fault_phases=FAULT_PHASES)
    print_rows(rows, driver.samples)
    print(figures, driver.events, stack.cluster_proxy.injected)
    by_phase = {row["phase"]: row for row in rows}
    assert figures["helper_5xx"] == 0, [s for s in driver.samples if s.status == 0 or s.status >= 500][:5]
    assert figures["unflagged_degraded"] == 0, [s for s in driver.samples if s.degraded and not s.flagged][:5]
    assert [m for m in driver.malformed if not 400 <= m[1] < 500] == []
    assert len(driver.malformed) > 0
    for row in rows:
        if "recovery_s" in row:
            assert row["recovery_s"] <= MAX_RECOVERY_S, row
    assert by_phase["embed_down"]["degraded"] > 0 and by_phase["rerank_slow"]["flagged"] > 0
    assert stack.cluster_proxy.injected_total > 0 and not math.isnan(figures["p99_faults_ms"])
    assert driver.events.get(202, 0) > 0  # the shoppers' clicks were taken


def _to(proxy: Any) -> int:
    """This process's open connections to ``proxy`` (the client side: the search's pools)."""
    port = urlsplit(proxy.url).port
    return sum(1 for c in psutil.Process().net_connections(kind="inet") if c.raddr and c.raddr.port == port)


def _threads() -> int:
    return psutil.Process().num_threads()


def test_connections_and_threads_stay_bounded_through_repeated_faults(
    es9_url: str, embed_url: str, catalogue_index: str
) -> None:
    """The search's clients keep their pools through faults: after three rounds of every fault (the cluster
    answering 429/503 and late, the embedder slow past its budget and then 503, the reranker unreachable and slow),
    each round between calm searches, the connections to each upstream are no more than the searches in flight,
    and neither they nor the threads grew after the first round (no client or pool re-created and left open)."""
    queries = [json.loads(line)["text"] for line in (CATALOGUE / "queries.jsonl").read_text().splitlines()]
    in_flight = 16
    with (
        fault_proxy(es9_url, share=0.0) as cluster_proxy,
        fault_proxy(embed_url, share=0.0) as embed_proxy,
        fault_proxy("http://127.0.0.1:9/rerank", share=0.0) as rerank_proxy,  # nothing listens: 502
        connect(cluster_proxy.url) as cluster,
        EmbeddingClient(embed_proxy.url, timeout_s=10.0, max_retries=0) as embedder,
    ):
        rerank = RerankConfig(url=rerank_proxy.url, top_k=10, timeout_s=0.3, max_retries=0)
        search = HybridSearch(
            cluster, catalogue_index, embedder=embedder, rerank=rerank, embed_budget_s=0.3, breaker_open_s=0.5
        )
        faults = [
            (cluster_proxy, Faults(share=0.3, statuses=(429, 503), path_pattern=r"/_search|/_msearch")),
            (cluster_proxy, Faults(delay_s=0.2)),
            (embed_proxy, Faults(delay_s=0.6)),
            (embed_proxy, Faults(share=1.0, statuses=(503,), path_pattern=r"/embeddings")),
            (rerank_proxy, Faults(delay_s=0.5)),
        ]
        modes = ("hybrid", "knn", "bm25", "hybrid+rerank")

        drawn = itertools.count()

        def one(i: int) -> None:
            text = f"{queries[i % len(queries)]} {next(drawn)}"  # each text new: the query-vector cache misses
            try:
                search.search(text, mode=modes[i % len(modes)], size=5)
            except ClusterError:
                pass  # the cluster's own 429/503 after the transport's retries: the app's 503, not the subject

        def searches(n: int) -> None:
            with ThreadPoolExecutor(in_flight) as pool:
                list(pool.map(one, range(n)))

        rounds: list[tuple[int, int, int, int]] = []
        try:
            for _ in range(3):
                for proxy, fault in faults:
                    proxy.set_faults(fault)
                    searches(3 * in_flight)
                    proxy.set_faults(Faults())
                    searches(in_flight)
                rounds.append((_to(cluster_proxy), _to(embed_proxy), _to(rerank_proxy), _threads()))
        finally:
            search.close()
    print("connections to the cluster, embedder, reranker and threads after each round:", rounds)
    assert cluster_proxy.injected_total > 0 and embed_proxy.delayed > 0 and rerank_proxy.delayed > 0
    for cluster_conns, embed_conns, rerank_conns, _ in rounds:
        assert max(cluster_conns, embed_conns, rerank_conns) <= in_flight, rounds
    first = rounds[0]
    for later in rounds[1:]:  # a pool's idle connections vary by one or two with the last searches' overlap
        assert all(b <= a + 2 for a, b in zip(first[:3], later[:3], strict=True)), rounds
        assert later[3] <= first[3], rounds
