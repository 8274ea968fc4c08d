"""Backfill under faults: bulk 429/503 from a loopback proxy, an embedding replica killed mid-run."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from connector import connect
from connector.client import Cluster
from connector.embedding_client import EmbeddingClient
from connector.jobs.backfill import BackfillConfig, run_backfill
from connector.jobs.store import JobCounts, JobStore
from tests.integration._faultproxy import fault_proxy
from tests.integration._jobs_helpers import add_vector_field, check_vectors, create_products, job_settings

pytestmark = [pytest.mark.integration, pytest.mark.ray]

ES9_OS3 = [pytest.param("es9", marks=pytest.mark.es9, id="es9"), pytest.param("os3", marks=pytest.mark.os3, id="os3")]


@pytest.fixture(scope="module")
def embedder(embed_url: str) -> Iterator[EmbeddingClient]:
    with EmbeddingClient(embed_url, timeout_s=120) as client:
        yield client


@pytest.fixture
def cluster(cluster_url: str) -> Iterator[Cluster]:
    with connect(cluster_url) as c:
        yield c


@pytest.mark.parametrize("cluster_url", ES9_OS3, indirect=True)
def test_bulk_429_and_503_are_retried_and_nothing_is_lost(cluster: Cluster, index_name: str,
                                                          embedder: EmbeddingClient) -> None:
    create_products(cluster, index_name, 1200)
    model_id = embedder.info().model_id
    add_vector_field(cluster, index_name, model_id)
    settings = job_settings(index_name, page_size=100, bulk_max_docs=50, max_backoff_s=1.0)
    config = BackfillConfig(index=index_name, fields=("title", "description"), template="{title}\n{description}",
                            slices=2, settings=settings, show_progress=False)
    with fault_proxy(cluster.url, share=0.2) as proxy, connect(proxy.url) as through_proxy:
        summary = run_backfill(through_proxy, config, embedder=embedder)
    assert proxy.injected.get(429, 0) > 0 and proxy.injected.get(503, 0) > 0, proxy.injected
    assert summary.main.read == 1200 and summary.main.updated == 1200 and summary.reconciles
    check_vectors(cluster, index_name, embedder, model_id, sample=30)


def _replica_actors() -> list[Any]:
    import ray

    names = [a for a in ray.util.list_named_actors(all_namespaces=True)
             if "SERVE_REPLICA" in a["name"] and "embed" in a["name"]]
    return [ray.get_actor(a["name"], namespace=a["namespace"]) for a in names]


@pytest.mark.parametrize("cluster_url", [ES9_OS3[0]], indirect=True)
def test_an_embedding_replica_killed_mid_run(cluster: Cluster, index_name: str, embedder: EmbeddingClient,
                                             embed_url: str) -> None:
    if os.environ.get("ESHYBRID_TEST_EMBED_URL"):
        pytest.skip("the embedding service is external (ESHYBRID_TEST_EMBED_URL): no replica to kill")
    import ray

    create_products(cluster, index_name, 1500)
    model_id = embedder.info().model_id
    add_vector_field(cluster, index_name, model_id)
    settings = job_settings(index_name, page_size=100, max_backoff_s=5.0, embed_max_retries=20)
    config = BackfillConfig(index=index_name, fields=("title", "description"), template="{title}\n{description}",
                            settings=settings, show_progress=False, job_id=f"{index_name}-job")
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
        counts = JobCounts()
        if cluster.index_exists(settings.jobs_index):
            for cp in store.load_checkpoints(config.job_id or "").values():
                counts.add(cp.counts)
        if counts.updated >= 300:
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
