"""SIGKILL the backfill CLI at three points, resume it, and check the final state is exact."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from connector.cluster.client import Cluster
from connector.jobs.store import JobCounts
from connector.services.embedding import EmbeddingClient
from tests.integration._jobs_helpers import (
    add_vector_field,
    check_vectors,
    cli_job_env,
    create_products,
    job_store,
    kill_cli_when_read,
    only_on,
    run_cli,
    scan,
)

pytestmark = [pytest.mark.integration, pytest.mark.ray, pytest.mark.slow]

PAGE = 50
N_DOCS = 2000


@only_on("es9", "os3")
def test_killed_three_times_then_resumed(cluster: Cluster, index_name: str, embed_url: str) -> None:
    create_products(cluster, index_name, N_DOCS)
    with EmbeddingClient(embed_url, timeout_s=120) as embedder:
        model_id = embedder.info().model_id
        add_vector_field(cluster, index_name, model_id)
        job_id = f"{index_name}-job"
        job = {"PAGE_SIZE": str(PAGE), "QUEUE_PAGES": "1", "EMBED_WORKERS": "1", "WRITE_WORKERS": "1"}
        env = cli_job_env(cluster, embed_url, index_name, **job)
        args = [
            "backfill",
            "--index",
            index_name,
            "--fields",
            "title,description",
            "--template",
            "{title}\\n{description}",
            "--slices",
            "2",
            "--job-id",
            job_id,
            "--json",
            "--no-progress",
        ]
        store = job_store(cluster, index_name)
        for k, target in enumerate((300, 900, 1500)):
            resume = ["--resume"] if k else []
            committed = kill_cli_when_read([*args, *resume], env, store, job_id, target)
            assert committed.read < N_DOCS, "killed too late: the scan was over"

        finished = run_cli([*args, "--resume"], env=env)
        assert finished.returncode == 0, finished.stderr[-3000:]
        summary = json.loads(finished.stdout.strip().splitlines()[-1])
        main = JobCounts.from_dict(summary["counts"])
        assert summary["status"] == "completed" and summary["reconciles"]
        assert main.read == N_DOCS and main.embedded == N_DOCS and main.dead_lettered == 0
        # Pages written but not yet checkpointed when a kill hit are re-read from the same point in
        # time, re-embedded, refused with 409 (their seq_no moved) and then skipped: never written twice.
        assert main.skipped == main.conflicts and main.updated + main.skipped == N_DOCS
        assert main.conflicts <= 3 * 2 * PAGE, f"{main.conflicts} documents were redone after the kills"
        versions = Counter(h["_version"] for h in scan(cluster, index_name, fields=["sku"]))
        assert versions == Counter({2: N_DOCS}), f"documents written more than once: {versions}"
        check_vectors(cluster, index_name, embedder, model_id, sample=50)
        job = store.get_job(job_id)
        assert job is not None and job["status"] == "completed" and job["phase"] == "done"
