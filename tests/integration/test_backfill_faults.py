"""Backfill under faults: bulk 429/503 from a loopback proxy, an embedding replica killed mid-run."""

from __future__ import annotations

import os
import threading
import time
from typing import Any

import pytest

from connector import connect
from connector.cluster.client import Cluster
from connector.jobs.backfill import run_backfill
from connector.jobs.store import JobStore
from connector.services.embedding import EmbeddingClient
from tests.fixtures.faultproxy import fault_proxy
from tests.integration._jobs_helpers import (  # noqa: F401 - embedder: a fixture
    add_vector_field,
    backfill_config,
    check_vectors,
    committed_counts,
    create_products,
    embedder,
    job_settings,
    only_on,
)

pytestmark = [pytest.mark.integration, pytest.mark.ray]


@only_on("es9", "os3")
def test_bulk_429_and_503_are_retried_and_nothing_is_lost(
    cluster: Cluster, index_name: str, embedder: EmbeddingClient
) -> None:
    create_products(cluster, index_name, 1200)
    model_id = embedder.info().model_id
    add_vector_field(cluster, index_name, model_id)
    settings = job_settings(index_name, page_size=100, bulk_max_docs=50, max_backoff_s=1.0)
    config = backfill_config(index_name, slices=2, settings=settings)
    with fault_proxy(cluster.url, share=0.2) as proxy, connect(proxy.url) as through_proxy:
        summary = run_backfill(through_proxy, config, embedder=embedder)
    assert proxy.injected.get(429, 0) > 0 and proxy.injected.get(503, 0) > 0, proxy.injected
    assert summary.main.read == 1200 and summary.main.updated == 1200 and summary.reconciles
    check_vectors(cluster, index_name, embedder, model_id, sample=30)


def _replica_actors() -> list[Any]:
    import ray

    names = [
        a
        for a in ray.util.list_named_actors(all_namespaces=True)
        if "SERVE_REPLICA" in a["name"] and "embed" in a["name"]
    ]
    return [ray.get_actor(a["name"], namespace=a["namespace"]) for a in names]


@only_on("es9")
def test_an_embedding_replica_killed_mid_run(
    cluster: Cluster, index_name: str, embedder: EmbeddingClient, embed_url: str
) -> None:
    if os.environ.get("ESHYBRID_TEST_EMBED_URL"):
        pytest.skip("the embedding service is external (ESHYBRID_TEST_EMBED_URL): no replica to kill")
    import ray

    create_products(cluster, index_name, 1500)
    model_id = embedder.info().model_id
    add_vector_field(cluster, index_name, model_id)
    settings = job_settings(index_name, page_size=100, max_backoff_s=5.0, embed_max_retries=20)
    config = backfill_config(index_name, settings=settings, job_id=f"{index_name}-job")
    result: dict[str, Any] = {}

    def job() -> None:
        try:
            with EmbeddingClient(embed_url, timeout_s=60, max_retries=3) as client:
                result["summary"] = run_backfill(cluster, config, embedder=client)
        except BaseException as e:  # noqa: BLE001 - re-raised by the test below
            result["error"] = e

    thread = threading.Thread(target=job)
    thread.start()
    store = JobStore(cluster, jobs_index=settings.jobs_index, dead_letter_index=settings.dead_letter_index)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and thread.is_alive():
        if committed_counts(store, config.job_id or "").updated >= 300:
            break
        time.sleep(0.5)
    replicas = _replica_actors()
    assert replicas, "no embedding replica found to kill"
    ray.kill(replicas[0], no_restart=True)
    killed_at = time.monotonic()
    thread.join(timeout=600)
    assert not thread.is_alive()
    if "error" in result:
        raise result["error"]
    summary = result["summary"]
    assert summary.main.read == 1500 and summary.main.updated == 1500 and summary.reconciles
    assert summary.elapsed_s > time.monotonic() - killed_at  # the kill happened while the job ran
    check_vectors(cluster, index_name, embedder, model_id, sample=30)
