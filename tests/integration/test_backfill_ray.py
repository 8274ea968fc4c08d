"""Scale-out: the slices of a backfill (and of a reindex) run as Ray tasks, each with its own checkpoint."""

from __future__ import annotations

import os
from dataclasses import replace

import pytest

from connector.cluster.client import Cluster
from connector.jobs.backfill import BackfillConfig, run_backfill
from connector.jobs.images import ImageFetchSettings, run_image_backfill
from connector.jobs.reindex import ReindexConfig, run_reindex
from connector.jobs.settings import ClusterSpec
from connector.jobs.store import JobStore
from connector.services.embedding import EmbeddingClient
from tests.fixtures.images import ImageServer
from tests.integration._jobs_helpers import add_vector_field, check_vectors, create_products, job_settings
from tests.integration.test_image_search import _catalogue, _create, _image_config

pytestmark = [pytest.mark.integration, pytest.mark.ray]


@pytest.mark.parametrize("cluster_url", [pytest.param("es9", marks=pytest.mark.es9, id="es9")], indirect=True)
def test_slices_as_ray_tasks(cluster: Cluster, index_name: str, embed_url: str) -> None:
    if os.environ.get("ESHYBRID_TEST_EMBED_URL"):
        pytest.skip("needs the session's own Ray (ESHYBRID_TEST_EMBED_URL points elsewhere)")
    import ray

    assert ray.is_initialized()  # the session's Ray, started by the ray_serve fixture
    create_products(cluster, index_name, 900, shards=3)
    with EmbeddingClient(embed_url, timeout_s=120) as embedder:
        model_id = embedder.info().model_id
        add_vector_field(cluster, index_name, model_id)
        settings = job_settings(index_name, page_size=100, ray_task_cpus=0.1)
        config = BackfillConfig(
            index=index_name,
            fields=("title", "description"),
            template="{title}\n{description}",
            slices=3,
            ray_address="auto",
            embed_url=embed_url,
            settings=settings,
            show_progress=False,
            job_id=f"{index_name}-job",
        )
        summary = run_backfill(cluster, config, embedder=embedder, cluster_spec=ClusterSpec(url=cluster.url))
        assert summary.main.read == 900 and summary.main.updated == 900 and summary.reconciles
        checkpoints = JobStore(cluster, jobs_index=settings.jobs_index).load_checkpoints(f"{index_name}-job")
        main = {key: cp for key, cp in checkpoints.items() if cp.pass_name == "main"}
        assert sorted(main) == ["main-0", "main-1", "main-2"] and all(cp.done for cp in main.values())
        assert sum(cp.counts.read for cp in main.values()) == 900
        assert all(cp.counts.read > 0 for cp in main.values())
        check_vectors(cluster, index_name, embedder, model_id, sample=30)


@pytest.mark.parametrize("cluster_url", [pytest.param("os3", marks=pytest.mark.os3, id="os3")], indirect=True)
def test_reindex_slices_as_ray_tasks(cluster: Cluster, index_name: str, embed_url: str) -> None:
    """Reindex hands its copy mode to the same executor: the slices of the copy run as Ray tasks."""
    if os.environ.get("ESHYBRID_TEST_EMBED_URL"):
        pytest.skip("needs the session's own Ray (ESHYBRID_TEST_EMBED_URL points elsewhere)")
    create_products(cluster, index_name, 300, shards=2)
    with EmbeddingClient(embed_url, timeout_s=120) as embedder:
        model_id = embedder.info().model_id
        settings = job_settings(index_name, page_size=50, ray_task_cpus=0.1)
        config = ReindexConfig(
            alias=index_name,
            fields=("title", "description"),
            template="{title}\n{description}",
            slices=2,
            ray_address="auto",
            embed_url=embed_url,
            settings=settings,
            show_progress=False,
            job_id=f"{index_name}-reindex",
        )
        summary = run_reindex(cluster, config, embedder=embedder, cluster_spec=ClusterSpec(url=cluster.url))
        assert summary.target_index == f"{index_name}-v1" and summary.reconciles
        assert summary.main.read == 300 and summary.main.updated == 300
        assert sorted(cluster.request("GET", f"/_alias/{index_name}").body) == [f"{index_name}-v1"]
        checkpoints = JobStore(cluster, jobs_index=settings.jobs_index).load_checkpoints(f"{index_name}-reindex")
        main = [cp for cp in checkpoints.values() if cp.pass_name == "main"]
        assert len(main) == 2 and all(cp.done and cp.counts.read > 0 for cp in main)
        check_vectors(cluster, index_name, embedder, model_id, sample=20)


@pytest.mark.parametrize("cluster_url", [pytest.param("es9", marks=pytest.mark.es9, id="es9")], indirect=True)
def test_image_backfill_slices_as_ray_tasks(
    cluster: Cluster, index_name: str, image_url: str, image_server: ImageServer
) -> None:
    """The image backfill on Ray: each task builds its own fetcher + client (the embedder does not pickle)."""
    if os.environ.get("ESHYBRID_TEST_EMBED_URL"):
        pytest.skip("needs the session's own Ray (ESHYBRID_TEST_EMBED_URL points elsewhere)")
    docs = _catalogue(image_server, index_name)
    _create(cluster, index_name, docs)
    settings = job_settings(index_name, page_size=10, ray_task_cpus=0.1)
    config = replace(
        _image_config(index_name), settings=settings, slices=2, ray_address="auto", embed_url=image_url,
        job_id=f"{index_name}-images",
    )  # fmt: skip
    fetch = ImageFetchSettings(timeout_s=5.0, max_retries=2, max_backoff_s=0.05)
    with EmbeddingClient(image_url, timeout_s=60) as clip:
        summary = run_image_backfill(
            cluster, config, client=clip, fetch=fetch, cluster_spec=ClusterSpec(url=cluster.url)
        )
    assert summary.reconciles and summary.main.read == len(docs)
    assert summary.main.updated == len(docs) - 1 and summary.main.dead_lettered == 1  # the broken image
    checkpoints = JobStore(cluster, jobs_index=settings.jobs_index).load_checkpoints(f"{index_name}-images")
    main = [cp for cp in checkpoints.values() if cp.pass_name == "main"]
    assert len(main) == 2 and all(cp.done and cp.counts.read > 0 for cp in main)
