"""Reindex with an alias swap: queries through the alias never fail, writes made meanwhile are kept."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

import pytest

from connector import connect
from connector.cluster.client import Cluster
from connector.errors import AuthenticationError, ClusterApiError
from connector.jobs.reindex import ReindexConfig, run_reindex
from connector.services.embedding import EmbeddingClient
from tests.integration._jobs_helpers import (  # noqa: F401 - embedder: a fixture
    TEMPLATE,
    TEXT_FIELDS,
    check_vectors,
    cosine,
    create_products,
    embedder,
    expected_text,
    job_settings,
    only_on,
    product,
    scan,
)

pytestmark = [pytest.mark.integration, pytest.mark.ray]


@dataclass
class Traffic:
    """An application querying (and optionally writing) through the alias while the job runs."""

    url: str
    alias: str
    write: bool = False
    retry_503: bool = False
    delete_ids: list[str] = field(default_factory=list)
    retried: int = 0
    queries: int = 0
    failures: list[str] = field(default_factory=list)
    written: dict[str, str] = field(default_factory=dict)
    deleted: list[str] = field(default_factory=list)
    refused_writes: int = 0
    stop: threading.Event = field(default_factory=threading.Event)
    threads: list[threading.Thread] = field(default_factory=list)

    def __enter__(self) -> Traffic:
        self.threads = [threading.Thread(target=self._query, daemon=True)]
        if self.write:
            self.threads.append(threading.Thread(target=self._write, daemon=True))
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=30)

    def _query(self) -> None:
        with connect(self.url) as cluster:
            while not self.stop.is_set():
                try:
                    body = self._search(cluster)
                    if body["hits"]["total"]["value"] == 0:
                        self.failures.append("zero hits")
                except Exception as e:  # noqa: BLE001 - recorded, asserted by the test
                    self.failures.append(repr(e))
                self.queries += 1

    def _search(self, cluster: Cluster) -> Any:
        query = {"query": {"match": {"title": "shoe lamp mug"}}, "size": 3}
        for attempt in range(4):
            try:
                return cluster.search(self.alias, query)
            except ClusterApiError as e:
                # Replacing a concrete index deletes it: searches in flight at that instant get a 503
                # (all shards failed) for a fraction of a second; an application retries those.
                if not self.retry_503 or e.status != 503 or attempt == 3:
                    raise
                self.retried += 1
                time.sleep(0.25)
        raise AssertionError("unreachable")

    def _write(self) -> None:
        with connect(self.url) as cluster:
            i = 0
            while not self.stop.is_set():
                doc_id, title = f"new{i}", f"Acme new running shoe {i}"
                try:
                    if i % 3 == 1 and self.delete_ids:
                        victim = self.delete_ids.pop()
                        cluster.request("DELETE", f"/{self.alias}/_doc/{victim}")
                        self.deleted.append(victim)
                    else:
                        cluster.request(
                            "PUT",
                            f"/{self.alias}/_doc/{doc_id}",
                            body={"title": title, "description": "new arrival", "price": 1.0},
                        )
                        self.written[doc_id] = title
                except (ClusterApiError, AuthenticationError) as e:
                    # Writes are blocked (403 cluster_block_exception) while a concrete index is replaced;
                    # the client reports any 403 as an AuthenticationError.
                    if getattr(e, "status", None) not in (403, 429):
                        self.failures.append(repr(e))
                    self.refused_writes += 1
                i += 1
                time.sleep(0.02)


def _config(index_name: str, alias: str, **overrides: Any) -> ReindexConfig:
    return ReindexConfig(
        alias=alias,
        fields=TEXT_FIELDS,
        template=TEMPLATE,
        settings=job_settings(index_name, page_size=200),
        show_progress=False,
        **overrides,
    )


def _check_copied_vectors(
    cluster: Cluster, alias: str, embedder: EmbeddingClient, model_id: str, sample: list[str]
) -> None:
    stored = {
        h["_id"]: h["_source"]
        for h in scan(cluster, alias, fields=["embedding", "eshybrid_meta"])
        if h["_id"] in sample
    }
    texts = [expected_text(product(int(i[1:]))) for i in sample]
    expected = embedder.embed_documents(texts)
    assert min(cosine(stored[i]["embedding"], v) for i, v in zip(sample, expected)) >= 0.9999
    assert all(stored[i]["eshybrid_meta"]["embedding"]["model_id"] == model_id for i in sample)


def _aliases(cluster: Cluster, alias: str) -> list[str]:
    return sorted(cluster.request("GET", f"/_alias/{alias}").body)


def test_reindex_behind_an_existing_alias(cluster: Cluster, index_name: str, embedder: EmbeddingClient) -> None:
    """Every server: NAME-v1 behind alias NAME -> NAME-v2 with vectors; queries never fail; writes survive."""
    alias, old = index_name, f"{index_name}-v1"
    create_products(cluster, old, 600)
    cluster.request("POST", "/_aliases", body={"actions": [{"add": {"index": old, "alias": alias}}]})
    model_id = embedder.info().model_id
    with Traffic(cluster.url, alias, write=True, delete_ids=[f"p{i}" for i in range(0, 600, 50)]) as traffic:
        summary = run_reindex(cluster, _config(index_name, alias), embedder=embedder)
        time.sleep(0.5)  # a few writes after the swap too
    assert traffic.queries > 20 and traffic.failures == [], traffic.failures[:5]
    assert summary.target_index == f"{index_name}-v2" and _aliases(cluster, alias) == [f"{index_name}-v2"]
    assert cluster.index_exists(old), "the old index is kept without --delete-old"
    assert summary.main.read == summary.main.updated and summary.reconciles
    cluster.refresh(alias)
    ids = {h["_id"] for h in scan(cluster, alias, fields=["title"])}
    assert set(traffic.written) <= ids, "a write acknowledged during the reindex is missing"
    assert not ids & set(traffic.deleted), "a document deleted during the reindex came back"
    assert {f"p{i}" for i in range(600)} - set(traffic.deleted) <= ids
    # Documents copied by the job carry the vector of their text (app writes after the swap have none).
    _check_copied_vectors(cluster, alias, embedder, model_id, [f"p{i}" for i in range(1, 600, 37)])


@only_on("es9", "os3")
def test_reindex_a_concrete_index_into_an_alias(cluster: Cluster, index_name: str, embedder: EmbeddingClient) -> None:
    """NAME is an index: it becomes alias NAME -> NAME-v1 in one _aliases call; no acknowledged write is lost."""
    create_products(cluster, index_name, 800)
    model_id = embedder.info().model_id
    with Traffic(cluster.url, index_name, write=True, retry_503=True) as traffic:
        summary = run_reindex(cluster, _config(index_name, index_name), embedder=embedder)
        time.sleep(0.5)
    assert traffic.failures == [] and traffic.queries > 20, traffic.failures[:5]
    assert _aliases(cluster, index_name) == [f"{index_name}-v1"]
    assert summary.reconciles and summary.main.read >= 800  # writes before the scan began are in it
    cluster.refresh(index_name)
    hits = {h["_id"]: h for h in scan(cluster, index_name, fields=["title"])}
    assert set(traffic.written) <= set(hits), "an acknowledged write was lost in the swap"
    assert {f"p{i}" for i in range(800)} <= set(hits)
    _check_copied_vectors(cluster, index_name, embedder, model_id, [f"p{i}" for i in range(0, 800, 40)])


@only_on("es8")
def test_reindex_reuses_vectors_and_deletes_the_old_index(
    cluster: Cluster, index_name: str, embedder: EmbeddingClient
) -> None:
    """A second reindex re-embeds nothing (text hash and model match); --delete-old drops the old index."""
    alias = index_name
    create_products(cluster, index_name, 300)
    first = run_reindex(cluster, _config(index_name, alias), embedder=embedder)
    assert first.main.embedded == 300
    second = run_reindex(cluster, _config(index_name, alias, delete_old=True), embedder=embedder)
    assert second.main.reused == 300 and second.main.embedded == 0 and second.reconciles
    assert _aliases(cluster, alias) == [f"{index_name}-v2"]
    assert not cluster.index_exists(f"{index_name}-v1")
    check_vectors(cluster, alias, embedder, embedder.info().model_id, sample=20)
