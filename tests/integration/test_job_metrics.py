"""``eshybrid backfill --metrics-textfile``: a real run leaves node_exporter a textfile with the job's series."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from connector.cluster.client import Cluster
from connector.observe import JOB_SERIES
from connector.services.embedding import EmbeddingClient
from tests.integration._jobs_helpers import add_vector_field, cli_job_env, create_products, only_on, run_cli

pytestmark = [pytest.mark.integration, pytest.mark.ray]

N_DOCS = 60


@only_on("es9", "os3")
def test_a_backfill_run_writes_its_series(cluster: Cluster, index_name: str, embed_url: str, tmp_path: Path) -> None:
    create_products(cluster, index_name, N_DOCS)
    with EmbeddingClient(embed_url, timeout_s=120) as embedder:
        add_vector_field(cluster, index_name, embedder.info().model_id)
    env = cli_job_env(cluster, embed_url, index_name)
    args = ["backfill", "--index", index_name, "--fields", "title,description", "--json", "--no-progress"]
    finished = run_cli([*args, "--metrics-textfile", str(tmp_path)], env=env)
    assert finished.returncode == 0, finished.stderr[-3000:]
    summary = json.loads(finished.stdout.strip().splitlines()[-1])
    (path,) = tmp_path.glob("*.prom")
    assert path.name == f"eshybrid_backfill_{index_name}.prom"
    samples = {
        (s.name, s.labels.get("outcome")): s.value
        for family in text_string_to_metric_families(path.read_text())
        for s in family.samples
    }
    assert {name for name, _ in samples} == set(JOB_SERIES)
    assert samples[("eshybrid_job_documents", "updated")] == N_DOCS == summary["counts"]["updated"]
    assert samples[("eshybrid_job_dead_letters", None)] == 0
    assert samples[("eshybrid_job_lag_documents", None)] == 0
    assert samples[("eshybrid_job_documents_per_second", None)] > 0
