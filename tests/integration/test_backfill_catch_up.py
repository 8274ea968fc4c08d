"""The backfill's catch-up reads only what others wrote during the job, not the job's own writes; and the
backfill records the service's model variant (quantization, backend) in the field's ``_meta``."""

from __future__ import annotations

from typing import Any

import pytest

from connector.cluster.client import Cluster
from connector.jobs.backfill import BackfillJob, run_backfill
from connector.services.embedding import EmbeddingClient
from tests.integration._jobs_helpers import (  # noqa: F401 - embedder: a fixture
    add_vector_field,
    backfill_config,
    bulk_index,
    check_vectors,
    create_products,
    embedder,
    job_settings,
    only_on,
    product,
)

pytestmark = [pytest.mark.integration, pytest.mark.ray]


@only_on("es9", "os3")
def test_catch_up_reads_only_what_others_wrote(
    cluster: Cluster, index_name: str, embedder: EmbeddingClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    n = 200
    create_products(cluster, index_name, n)
    model_id = embedder.info().model_id
    add_vector_field(cluster, index_name, model_id)
    original = BackfillJob.run_later_phases

    def app_writes_then_catch_up(job: BackfillJob, main: Any) -> None:
        # Between the main scan and the catch-up, as an application would: a partial update of a document
        # the job has just written (its text changes), and a new document.
        cluster.request("POST", f"/{index_name}/_update/p3", body={"doc": {"title": "changed after the scan"}})
        bulk_index(cluster, index_name, {"p-new": product(n + 1)})
        original(job, main)

    monkeypatch.setattr(BackfillJob, "run_later_phases", app_writes_then_catch_up)
    config = backfill_config(index_name, slices=2, settings=job_settings(index_name, page_size=50))
    summary = run_backfill(cluster, config, embedder=embedder)

    assert summary.main.read == n and summary.main.updated == n and summary.reconciles
    # Before: the catch-up read the n documents the job wrote (n + 2). Now only the two others wrote.
    assert summary.catch_up.read == 2 and summary.catch_up.updated == 2, summary.as_dict()
    hits = check_vectors(cluster, index_name, embedder, model_id, sample=5)
    assert hits["p3"]["_source"]["title"] == "changed after the scan" and "p-new" in hits

    # The service's variant is now in the field's _meta (it was missing), so check_compatible can compare.
    meta = cluster.get_mapping(index_name)["_meta"]["eshybrid"]["vector_fields"]["embedding"]
    info = embedder.info()
    assert (meta["model_quantization"], meta["model_backend"]) == (info.quantization, info.backend)
    assert meta["model_id"] == model_id and "source_fields" in meta  # nothing else lost
