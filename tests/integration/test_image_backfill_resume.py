"""The image backfill with prefetch, SIGKILLed twice mid-run and resumed (ES 9, OpenSearch 3, the tiny CLIP on a
real Ray Serve, images on a local HTTP server): every image vector written once and equal to the service's vector
of that image, the broken images dead-lettered once each, the checkpoints reconciled."""

from __future__ import annotations

import base64
import json
from collections import Counter
from typing import Any

import numpy as np
import pytest

from connector.cluster.client import Cluster
from connector.jobs.store import JobCounts
from connector.services.embedding import EmbeddingClient
from tests.fixtures.images import ImageServer, shape_png, trainer
from tests.integration._jobs_helpers import cli_job_env, job_store, kill_cli_when_read, only_on, run_cli, scan

pytestmark = [pytest.mark.integration, pytest.mark.ray]

N_DOCS = 240
PAGE = 20
BROKEN = {"p7", "p95", "p201"}


def _catalogue(server: ImageServer, tag: str) -> tuple[list[dict[str, Any]], dict[str, bytes]]:
    """``N_DOCS`` products; every second image answers 503 once (a retry that slows the job enough to kill it)."""
    t = trainer()
    images: dict[str, bytes] = {}
    docs: list[dict[str, Any]] = []
    for i in range(N_DOCS):
        doc_id = f"p{i}"
        colour, shape = list(t.COLOURS)[i % len(t.COLOURS)], list(t.SHAPES)[i % len(t.SHAPES)]
        path = f"/resume/{tag}/{doc_id}.png"
        if doc_id not in BROKEN:
            images[doc_id] = shape_png(colour, shape, seed=5000 + i)
            server.add({path: (200, "image/png", images[doc_id])})
        url = f"{server.base}{'/flaky' if i % 2 else ''}{path}"
        docs.append({"_id": doc_id, "title": f"item {i}", "image_url": url})
    return docs, images


def _create(cluster: Cluster, index: str, docs: list[dict[str, Any]]) -> None:
    settings: dict[str, Any] = {"index": {"number_of_shards": 2, "number_of_replicas": 0}}
    if cluster.capabilities.requires_knn_index_setting:
        settings["index"]["knn"] = True
    mappings = {"properties": {"title": {"type": "text"}, "image_url": {"type": "keyword"}}}
    cluster.create_index(index, {"settings": settings, "mappings": mappings})
    lines: list[Any] = []
    for doc in docs:
        lines += [{"index": {"_index": index, "_id": doc["_id"]}}, {k: v for k, v in doc.items() if k != "_id"}]
    assert not cluster.bulk(lines).get("errors")
    cluster.refresh(index)


@only_on("es9", "os3")
def test_image_backfill_killed_twice_then_resumed(
    cluster: Cluster, index_name: str, image_url: str, image_server: ImageServer
) -> None:
    docs, images = _catalogue(image_server, index_name)
    _create(cluster, index_name, docs)
    job_id = f"{index_name}-job"
    env = cli_job_env(cluster, image_url, index_name, PAGE_SIZE=str(PAGE), EMBED_WORKERS="1", WRITE_WORKERS="1")
    args = ["backfill", "--images", "--index", index_name, "--fields", "image_url", "--slices", "2",
            "--job-id", job_id, "--json", "--no-progress"]  # fmt: skip
    store = job_store(cluster, index_name)
    for k, target in enumerate((60, 140)):
        resume = ["--resume"] if k else []
        committed = kill_cli_when_read([*args, *resume], env, store, job_id, target, poll_s=0.05)
        assert committed.read < N_DOCS, "killed too late: the scan was over"

    finished = run_cli([*args, "--resume"], env=env)
    assert finished.returncode == 0, finished.stderr[-3000:]
    summary = json.loads(finished.stdout.strip().splitlines()[-1])
    main = JobCounts.from_dict(summary["counts"])
    assert summary["status"] == "completed" and summary["reconciles"]
    good = N_DOCS - len(BROKEN)
    assert main.read == N_DOCS and main.dead_lettered == len(BROKEN)
    # Pages written but not checkpointed when a kill hit are re-read, refused with 409 and skipped: written once.
    assert main.skipped == main.conflicts and main.updated + main.skipped == good
    letters = store.dead_letters(job_id)
    assert {x["doc_id"] for x in letters} == BROKEN and len(letters) == len(BROKEN)
    assert {x["reason_code"] for x in letters} == {"image_unreachable"}

    hits = {h["_id"]: h for h in scan(cluster, index_name)}
    versions = Counter(h["_version"] for doc_id, h in hits.items() if doc_id not in BROKEN)
    assert versions == Counter({2: good}), f"documents written more than once: {versions}"
    assert all(hits[doc_id]["_version"] == 1 for doc_id in BROKEN)
    sample = ["p0", "p1", "p58", "p61", "p139", "p141", "p239"]
    with EmbeddingClient(image_url, timeout_s=60) as clip:
        expected = clip.embed_images([{"data": base64.b64encode(images[d]).decode("ascii")} for d in sample])
    for doc_id, vector in zip(sample, expected):
        stored = hits[doc_id]["_source"]["image_embedding"]
        assert float(np.dot(stored, vector)) > 0.9999, doc_id
