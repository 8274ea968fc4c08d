"""Helpers of the backfill / reindex / migration integration tests (real clusters, real Ray Serve).

The ``embedder`` fixture is used by importing it into a test module (``cluster`` is a shared fixture).
"""

from __future__ import annotations

import math
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from connector.cluster.client import Cluster, JsonDict
from connector.jobs.backfill import BackfillConfig
from connector.jobs.settings import JobSettings
from connector.jobs.store import JobCounts, JobStore, sum_counts
from connector.services.embedding import EmbeddingClient
from connector.texts import text_hash
from migrations import MigrationSettings, Migrator

REPO_ROOT = Path(__file__).resolve().parents[2]
MODEL_DIMS = 384
TEXT_FIELDS = ("title", "description")
TEMPLATE = "{title}\n{description}"

_COLORS = ["red", "blue", "black", "white", "green", "grey", "navy", "pink", "olive", "beige"]
_NOUNS = [
    "running shoe",
    "desk lamp",
    "coffee mug",
    "backpack",
    "wool scarf",
    "phone case",
    "water bottle",
    "office chair",
    "yoga mat",
    "rain jacket",
    "hiking boot",
    "kettle",
    "notebook",
    "headphones",
]
_BRANDS = ["Acme", "Globex", "Initech", "Umbrella", "Hooli", "Vandelay", "Stark", "Wayne"]


def product(i: int) -> JsonDict:
    """A short synthetic product (short texts keep the CPU embedding fast)."""
    rng = random.Random(i)
    return {
        "title": f"{rng.choice(_BRANDS)} {rng.choice(_COLORS)} {rng.choice(_NOUNS)} {i}",
        "description": f"{rng.choice(_COLORS)} {rng.choice(_NOUNS)}, size {rng.randint(1, 12)}",
        "price": round(rng.uniform(1, 300), 2),
        "sku": f"SKU-{i:06d}",
    }


@pytest.fixture(scope="module")
def embedder(embed_url: str) -> Iterator[EmbeddingClient]:
    with EmbeddingClient(embed_url, timeout_s=120) as client:
        yield client


def only_on(*keys: str) -> pytest.MarkDecorator:
    """Run a test on these servers only (``es9``, ``os3``...): ``cluster_url`` parametrised, each with its marker."""
    return pytest.mark.parametrize(
        "cluster_url", [pytest.param(key, marks=getattr(pytest.mark, key), id=key) for key in keys], indirect=True
    )


def job_settings(index_name: str, **overrides: Any) -> JobSettings:
    """Job settings whose job and dead-letter indices are named after the test index (cleaned up with it)."""
    return JobSettings(
        jobs_index=f"{index_name}-jobs", dead_letter_index=f"{index_name}-dead", progress_interval_s=2.0, **overrides
    )


def job_store(cluster: Cluster, index_name: str) -> JobStore:
    """The job and dead-letter indices of :func:`job_settings` (and :func:`cli_job_env`), to read them back."""
    settings = job_settings(index_name)
    return JobStore(cluster, jobs_index=settings.jobs_index, dead_letter_index=settings.dead_letter_index)


def cli_job_env(cluster: Cluster, embed_url: str, index_name: str, **job: str) -> dict[str, str]:
    """The environment of an ``eshybrid`` job run by the CLI: the cluster, the embedder, :func:`job_settings`'
    job indices, and ``ESHYBRID_JOB_<KEY>`` for each keyword (e.g. ``PAGE_SIZE="50"``)."""
    settings = job_settings(index_name)
    return {
        "ESHYBRID_URL": cluster.url,
        "ESHYBRID_EMBED_URL": embed_url,
        "ESHYBRID_JOB_JOBS_INDEX": settings.jobs_index,
        "ESHYBRID_JOB_DEAD_LETTER_INDEX": settings.dead_letter_index,
        **{f"ESHYBRID_JOB_{key}": value for key, value in job.items()},
    }


def backfill_config(index: str, **overrides: Any) -> BackfillConfig:
    """A backfill of ``title`` + ``description``, job indices named after ``index``, no progress bar."""
    settings = overrides.pop("settings", None) or job_settings(index)
    return BackfillConfig(
        index=index, fields=TEXT_FIELDS, template=TEMPLATE, settings=settings, show_progress=False, **overrides
    )


def committed_counts(store: JobStore, job_id: str) -> JobCounts:
    """What the checkpoints of a (running) job have committed so far."""
    if not store.cluster.index_exists(store.jobs_index):
        return JobCounts()
    return sum_counts(store.load_checkpoints(job_id).values())


def kill_cli_when_read(
    args: Sequence[str], env: Mapping[str, str], store: JobStore, job_id: str, target: int, *, poll_s: float = 0.2
) -> JobCounts:
    """Start ``eshybrid <args>`` and SIGKILL it once its checkpoints have read ``target`` documents; the committed
    counts after the kill (asserted to reconcile: a kill never leaves half a page counted)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "connector.cli", *args],
        cwd=REPO_ROOT,
        env=cli_env(env),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 300
    while committed_counts(store, job_id).read < target:
        assert proc.poll() is None, f"the job ended before being killed: {proc.communicate()}"
        assert time.monotonic() < deadline, "the job made no progress"
        time.sleep(poll_s)
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate()
    assert proc.returncode == -signal.SIGKILL
    committed = committed_counts(store, job_id)
    assert committed.reconciles()
    return committed


def create_products(
    cluster: Cluster,
    index: str,
    n: int,
    *,
    shards: int = 2,
    docs: Mapping[str, JsonDict] | None = None,
    replicas: int = 0,
) -> None:
    """A BM25 index (as a shop has it) holding ``n`` products, ids ``p<i>``."""
    settings: JsonDict = {"index": {"number_of_shards": shards, "number_of_replicas": replicas}}
    if cluster.capabilities.requires_knn_index_setting:
        settings["index"]["knn"] = True
    cluster.create_index(
        index,
        {
            "settings": settings,
            "mappings": {
                "properties": {
                    "title": {"type": "text"},
                    "description": {"type": "text"},
                    "price": {"type": "float"},
                    "sku": {"type": "keyword"},
                }
            },
        },
    )
    bulk_index(cluster, index, {f"p{i}": product(i) for i in range(n)})
    if docs:
        bulk_index(cluster, index, docs)
    cluster.refresh(index)


def bulk_index(cluster: Cluster, index: str, docs: Mapping[str, JsonDict]) -> None:
    items = list(docs.items())
    for start in range(0, len(items), 1000):
        lines: list[JsonDict] = []
        for doc_id, source in items[start : start + 1000]:
            lines += [{"index": {"_index": index, "_id": doc_id}}, dict(source)]
        result = cluster.bulk(lines)
        assert not result.get("errors"), [i for i in result["items"] if "error" in next(iter(i.values()))][:3]


def add_vector_field(
    cluster: Cluster, index: str, model_id: str, *, vector_field: str = "embedding", dims: int = MODEL_DIMS
) -> None:
    """Migration 0001 (the upgrade path a shop runs first)."""
    Migrator(
        cluster,
        index,
        params={
            "vector_field": vector_field,
            "dims": dims,
            "model_id": model_id,
            "source_fields": ",".join(TEXT_FIELDS),
            "template": TEMPLATE,
        },
        settings=MigrationSettings(state_index=f"{index}-migrations"),
    ).upgrade("0001")


def scan(cluster: Cluster, index: str, *, fields: Sequence[str] | None = None) -> Iterator[JsonDict]:
    """Every hit of an index (search_after on a keyword-free sort: ``_doc`` within a scroll)."""
    source: Any = {"includes": list(fields)} if fields is not None else True
    if fields is None and cluster.capabilities.flavor == "elasticsearch" and cluster.capabilities.major >= 9:
        source = {"exclude_vectors": False}
    body = {"size": 1000, "sort": ["_doc"], "_source": source, "version": True, "seq_no_primary_term": True}
    page = cluster.request("POST", f"/{index}/_search", body=body, params={"scroll": "2m"}).body
    scroll_id = page.get("_scroll_id")
    try:
        while page["hits"]["hits"]:
            yield from page["hits"]["hits"]
            page = cluster.request("POST", "/_search/scroll", body={"scroll": "2m", "scroll_id": scroll_id}).body
            scroll_id = page.get("_scroll_id", scroll_id)
    finally:
        cluster.request("DELETE", "/_search/scroll", body={"scroll_id": [scroll_id]}, ignore=(404,))


def cosine(a: Sequence[float], b: Sequence[float]) -> float:
    dot = sum(x * y for x, y in zip(a, b))
    return dot / (math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b)))


def expected_text(source: Mapping[str, Any]) -> str:
    return "\n".join(v for v in (source.get("title"), source.get("description")) if v)


def check_vectors(
    cluster: Cluster, index: str, embedder: Any, model_id: str, *, sample: int = 100, vector_field: str = "embedding"
) -> dict[str, JsonDict]:
    """Every document has a vector + bookkeeping for its current text; a sample equals the service's vector."""
    cluster.refresh(index)
    hits = list(scan(cluster, index, fields=["title", "description", vector_field, "eshybrid_meta"]))
    missing = [
        h["_id"]
        for h in hits
        if (h["_source"].get("eshybrid_meta") or {}).get(vector_field, {}).get("text_hash")
        != text_hash(expected_text(h["_source"]))
    ]
    assert not missing, f"{len(missing)} documents lack the vector of their text, e.g. {missing[:5]}"
    assert all((h["_source"]["eshybrid_meta"][vector_field]["model_id"] == model_id) for h in hits)
    picked = random.Random(7).sample(hits, min(sample, len(hits)))
    vectors = embedder.embed_documents([expected_text(h["_source"]) for h in picked])
    worst = min(cosine(h["_source"][vector_field], v) for h, v in zip(picked, vectors))
    assert worst >= 0.9999, f"a stored vector differs from the service's (cosine {worst})"
    return {h["_id"]: h for h in hits}


def run_cli(args: Sequence[str], *, env: Mapping[str, str], timeout_s: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "connector.cli", *args],
        cwd=REPO_ROOT,
        env=cli_env(env),
        capture_output=True,
        text=True,
        timeout=timeout_s,
    )


def cli_env(extra: Mapping[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ESHYBRID_") or k.startswith("ESHYBRID_TEST")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))
    env.update(extra)
    return env
