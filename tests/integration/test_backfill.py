"""Backfill in place against the real servers and the real embedding service."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from connector import connect
from connector.cluster.client import Cluster
from connector.jobs.backfill import run_backfill
from connector.jobs.store import JobStore
from connector.services.embedding import EmbeddingClient
from tests.integration._jobs_helpers import (  # noqa: F401 - embedder: a fixture
    add_vector_field,
    backfill_config,
    bulk_index,
    check_vectors,
    cosine,
    create_products,
    embedder,
    job_settings,
    only_on,
    product,
    scan,
)

pytestmark = [pytest.mark.integration, pytest.mark.ray]


def _without_ours(source: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in source.items() if k not in ("embedding", "eshybrid_meta")}


def test_backfill_contract(cluster: Cluster, index_name: str, embedder: EmbeddingClient) -> None:
    """Every server: each document gets its text's vector; nothing else changes; a re-run is incremental."""
    create_products(cluster, index_name, 300)
    model_id = embedder.info().model_id
    add_vector_field(cluster, index_name, model_id)
    before = {h["_id"]: h["_source"] for h in scan(cluster, index_name)}

    summary = run_backfill(cluster, backfill_config(index_name, slices=2), embedder=embedder)

    assert summary.main.read == 300 and summary.main.updated == 300 and summary.reconciles
    check_vectors(cluster, index_name, embedder, model_id, sample=50)
    after = {h["_id"]: _without_ours(h["_source"]) for h in scan(cluster, index_name)}
    assert after == before, "the backfill changed a field other than the vector and its bookkeeping"

    cluster.request(
        "POST", f"/{index_name}/_update/p7", body={"doc": {"title": "changed title"}}, params={"refresh": "true"}
    )
    again = run_backfill(cluster, backfill_config(index_name), embedder=embedder)
    assert again.main.read == 300 and again.main.updated == 1 and again.main.skipped == 299
    assert again.main.embedded == 1 and again.reconciles
    check_vectors(cluster, index_name, embedder, model_id, sample=5)


@pytest.mark.slow
@only_on("es9", "os3")
def test_backfill_10k(cluster: Cluster, index_name: str, embedder: EmbeddingClient) -> None:
    create_products(cluster, index_name, 10_000, shards=3)
    model_id = embedder.info().model_id
    add_vector_field(cluster, index_name, model_id)
    before = {h["_id"]: h["_source"] for h in scan(cluster, index_name)}
    started = time.monotonic()
    summary = run_backfill(cluster, backfill_config(index_name, slices=3), embedder=embedder)
    elapsed = time.monotonic() - started
    assert summary.main.read == 10_000 and summary.main.updated == 10_000 and summary.reconciles
    check_vectors(cluster, index_name, embedder, model_id, sample=200)
    after = {h["_id"]: _without_ours(h["_source"]) for h in scan(cluster, index_name)}
    assert after == before
    print(f"backfill of 10,000 docs: {elapsed:.1f}s, {summary.docs_per_s:.0f} docs/s")


BAD_DOCS: dict[str, dict[str, Any]] = {
    "bad-missing": {"price": 3.0},
    "bad-empty": {"title": "  ", "description": ""},
    "bad-type": {"title": 12345, "description": "ok"},
    "bad-list": {"title": ["lamp", 3]},
    "bad-long": {"title": "word " * 5000},
}


def test_bad_documents_are_dead_lettered(
    cluster: Cluster, cluster_key: str, index_name: str, embedder: EmbeddingClient
) -> None:
    bad = dict(BAD_DOCS)
    if cluster_key == "es8":
        # ES 8 stores a lone surrogate sent as a JSON escape (ES 9 and OpenSearch refuse it at index time).
        bad["bad-surrogate"] = {"title": "broken \ud800 text"}
    create_products(cluster, index_name, 50, docs={})
    cluster.request("PUT", f"/{index_name}/_mapping", body={"dynamic": False})
    bulk_index(cluster, index_name, bad)
    cluster.refresh(index_name)
    model_id = embedder.info().model_id
    add_vector_field(cluster, index_name, model_id)
    settings = job_settings(index_name, max_text_chars=10_000)
    summary = run_backfill(cluster, backfill_config(index_name, settings=settings), embedder=embedder)

    assert summary.main.read == 50 + len(bad)
    assert summary.main.dead_lettered == len(bad) and summary.main.updated == 50 and summary.reconciles
    letters = {
        d["doc_id"]: d
        for d in JobStore(
            cluster, jobs_index=settings.jobs_index, dead_letter_index=settings.dead_letter_index
        ).dead_letters(summary.job_id)
    }
    codes = {doc_id: letter["reason_code"] for doc_id, letter in letters.items()}
    expected = {
        "bad-missing": "missing_text",
        "bad-empty": "empty_text",
        "bad-type": "wrong_type",
        "bad-list": "wrong_type",
        "bad-long": "text_too_long",
    }
    if "bad-surrogate" in bad:
        expected["bad-surrogate"] = "invalid_utf8"
    assert codes == expected
    assert "holds a int" in letters["bad-type"]["reason"] and "--fields" in letters["bad-type"]["reason"]
    assert "over the limit of 10000" in letters["bad-long"]["reason"]
    assert all(letter["job_id"] == summary.job_id and letter["index"] == index_name for letter in letters.values())


@only_on("es9", "os2")
def test_documents_updated_during_the_run_get_the_vector_of_their_new_text(
    cluster: Cluster, index_name: str, embedder: EmbeddingClient
) -> None:
    n = 1500
    create_products(cluster, index_name, n)
    model_id = embedder.info().model_id
    add_vector_field(cluster, index_name, model_id)
    updated: dict[str, str] = {}
    app_done = threading.Event()

    def app() -> None:
        # The application edits titles spread over the index while the job runs: some documents
        # before the job reaches them (409 on write, redone), some after (found by the catch-up).
        with connect(cluster.url) as writer:
            time.sleep(1.0)
            for i in range(60):
                doc_id = f"p{(i * 97) % n}"
                title = f"edited title {i}"
                writer.request("POST", f"/{index_name}/_update/{doc_id}", body={"doc": {"title": title}})
                updated[doc_id] = title
                time.sleep(0.03)
        app_done.set()

    thread = threading.Thread(target=app)
    thread.start()
    try:
        config = backfill_config(index_name, slices=2, settings=job_settings(index_name, page_size=100))
        summary = run_backfill(cluster, config, embedder=embedder)
        job_done_while_app_ran = not app_done.is_set()
    finally:
        thread.join()
    assert not job_done_while_app_ran, "the job ended before the application's edits: make it longer"
    assert summary.reconciles and summary.catch_up.read > 0
    hits = check_vectors(cluster, index_name, embedder, model_id, sample=20)
    texts = {doc_id: f"{title}\n{product(int(doc_id[1:]))['description']}" for doc_id, title in updated.items()}
    vectors = dict(zip(texts, embedder.embed_documents(list(texts.values()))))
    for doc_id, title in updated.items():
        assert hits[doc_id]["_source"]["title"] == title
        assert cosine(hits[doc_id]["_source"]["embedding"], vectors[doc_id]) >= 0.9999
