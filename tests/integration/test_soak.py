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
import json
import math
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from connector import connect
from connector.services.embedding import EmbeddingClient
from mappings import TextField, VectorField, build_index_body
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
        info = embedder.info()
        body = build_index_body(
            cluster.capabilities,
            text_fields=[TextField("title"), TextField("text")],
            vector_fields=[VectorField(dims=info.dims, model_id=info.model_id)],
            extra_properties={
                "category": {"type": "keyword"},
                "price": {"type": "float"},
                "in_stock": {"type": "boolean"},
            },
            number_of_shards=1,
            number_of_replicas=0,
        )
        cluster.create_index(index, body)
        try:
            vectors = embedder.embed_documents([f"{r['title']}\n{r['text']}" for r in rows])
            lines: list[dict[str, Any]] = []
            for row, vector in zip(rows, vectors, strict=True):
                source = {k: row[k] for k in ("title", "text", "category", "price", "in_stock")}
                lines += [{"index": {"_index": index, "_id": row["_id"]}}, {**source, "embedding": vector}]
            assert not cluster.bulk(lines, refresh=True)["errors"]
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
