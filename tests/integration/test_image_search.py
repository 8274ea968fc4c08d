"""Images as a third signal on ES 9 and OpenSearch 3: image backfill from a local HTTP server (a broken URL lands
in dead letters, its text vector stays), incremental re-runs (a new image under an unchanged URL is embedded
again), the meaning check with the trained tiny CLIP (the text "red circle" retrieves red circles, an example image
retrieves its look-alikes), and the async driver answering what the sync one answers."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest

from connector import aconnect
from connector.cluster.client import Cluster
from connector.jobs.backfill import BackfillConfig, run_backfill
from connector.jobs.images import ImageFetchSettings, run_image_backfill
from connector.search import AsyncHybridSearch, HybridSearch, SearchResponse
from connector.search import query_builder as qb
from connector.search.images import ImageSignal
from connector.search.models import FusionConfig
from connector.services.embedding import AsyncEmbeddingClient, EmbeddingClient
from mappings.images import image_vector_fields
from tests.fixtures.images import ImageServer, shape_png, trainer
from tests.integration._jobs_helpers import (  # noqa: F401 - embedder: a fixture
    add_vector_field,
    backfill_config,
    bulk_index,
    embedder,
    job_settings,
    job_store,
    only_on,
)
from tests.integration.test_hybrid_search_async import _same

pytestmark = [pytest.mark.integration, pytest.mark.ray]

PER_CLASS = 3


@pytest.fixture(scope="module")
def clip_client(image_url: str) -> Iterator[EmbeddingClient]:
    with EmbeddingClient(image_url, timeout_s=60) as client:
        yield client


def _catalogue(server: ImageServer, tag: str) -> dict[str, dict[str, Any]]:
    """``PER_CLASS`` products per colour x shape, each image served by ``server``; titles say nothing of the look."""
    docs: dict[str, dict[str, Any]] = {}
    t = trainer()
    n = 0
    for colour in t.COLOURS:
        for shape in t.SHAPES:
            for k in range(PER_CLASS):
                doc_id = f"{colour}-{shape}-{k}"
                server.add({f"/img/{doc_id}.png": (200, "image/png", shape_png(colour, shape, seed=1000 + n))})
                docs[doc_id] = {
                    "title": f"item {n}",
                    "description": "a product of the shop",
                    "colour": colour,
                    "image_url": f"{server.base}/img/{doc_id}.png",
                }
                n += 1
    # The server answers 503 to the first request of each /flaky/ path: one path per test run.
    server.add({f"/img/flaky-{tag}.png": (200, "image/png", shape_png("red", "circle", seed=7))})
    docs["flaky"] = {"title": "item flaky", "description": "a product", "colour": "red",
                     "image_url": f"{server.base}/flaky/img/flaky-{tag}.png"}  # fmt: skip
    docs["broken"] = {"title": "item broken", "description": "a product", "colour": "red",
                      "image_url": f"{server.base}/img/gone.png"}  # fmt: skip
    return docs


def _create(cluster: Cluster, index: str, docs: dict[str, dict[str, Any]]) -> None:
    settings: dict[str, Any] = {"index": {"number_of_shards": 1, "number_of_replicas": 0}}
    if cluster.capabilities.requires_knn_index_setting:
        settings["index"]["knn"] = True
    properties = {"title": {"type": "text"}, "description": {"type": "text"}, "colour": {"type": "keyword"},
                  "image_url": {"type": "keyword"}}  # fmt: skip
    cluster.create_index(index, {"settings": settings, "mappings": {"properties": properties}})
    bulk_index(cluster, index, docs)
    cluster.refresh(index)


def _image_config(index: str) -> BackfillConfig:
    return BackfillConfig(
        index=index,
        fields=("image_url",),
        vector_field="image_embedding",
        settings=job_settings(index),
        show_progress=False,
    )


@only_on("es9", "os3")
def test_images_as_a_third_signal(
    cluster_url: str,
    embed_url: str,
    cluster: Cluster,
    index_name: str,
    embedder: EmbeddingClient,
    clip_client: EmbeddingClient,
    image_server: ImageServer,
) -> None:
    docs = _catalogue(image_server, index_name)
    _create(cluster, index_name, docs)
    add_vector_field(cluster, index_name, embedder.info().model_id)
    text_summary = run_backfill(cluster, backfill_config(index_name), embedder=embedder)
    assert text_summary.main.updated == len(docs)

    fetch = ImageFetchSettings(timeout_s=5.0, max_retries=2, max_backoff_s=0.05)
    summary = run_image_backfill(cluster, _image_config(index_name), client=clip_client, fetch=fetch)
    assert summary.reconciles and summary.main.read == len(docs)
    assert summary.main.updated == len(docs) - 1 and summary.main.dead_lettered == 1
    assert image_server.hits[f"/flaky/img/flaky-{index_name}.png"] == 2, "a 503 is retried"

    letters = job_store(cluster, index_name)
    (letter,) = letters.dead_letters(summary.job_id)
    assert letter["doc_id"] == "broken" and letter["reason_code"] == "image_unreachable"
    assert "HTTP 404" in letter["reason"] and letter["vector_field"] == "image_embedding"
    broken = cluster.request("GET", f"/{index_name}/_doc/broken").body["_source"]
    # ES 9.1+ leaves vectors out of _source; the bookkeeping says which vectors the document has.
    book = broken["eshybrid_meta"]
    assert "embedding" in book and "image_embedding" not in book, "the text vector stays"
    mapping = cluster.get_mapping(index_name)
    assert image_vector_fields(mapping.get("_meta")) == {"image_embedding": "image_url"}

    gets = dict(image_server.hits)
    again = run_image_backfill(cluster, _image_config(index_name), client=clip_client, fetch=fetch)
    assert again.main.updated == 0 and again.main.skipped == len(docs) - 1 and again.main.dead_lettered == 1
    assert image_server.hits["/img/red-circle-1.png"] == gets["/img/red-circle-1.png"], "a HEAD, no download"

    # New bytes under an unchanged URL (its ETag changes): that document alone is embedded again.
    changed = docs["green-square-0"]["image_url"].removeprefix(image_server.base)
    image_server.add({changed: (200, "image/png", shape_png("green", "square", seed=4242))})
    once_more = run_image_backfill(cluster, _image_config(index_name), client=clip_client, fetch=fetch)
    assert once_more.main.updated == 1 and once_more.main.skipped == len(docs) - 2
    assert image_server.hits[changed] == gets[changed] + 1

    # The meaning check: "red circle" through the text tower, kNN over the image field.
    vector = clip_client.embed_query("red circle")
    body = qb.knn_leg_body(
        vector, knn_shape=cluster.capabilities.knn_leg_shape, field="image_embedding", k=PER_CLASS, num_candidates=50
    )
    top = [h["_id"] for h in cluster.search(index_name, body)["hits"]["hits"]]
    assert all(doc_id.startswith("red-circle") or doc_id == "flaky" for doc_id in top), top

    # Fused with the lexical and text-vector legs, with pre-filters and explain.
    signal = ImageSignal(embedder=clip_client, field="image_embedding")
    search = HybridSearch(cluster, index_name, embedder=embedder, image=signal)
    fusion = FusionConfig(method="linear", lexical_weight=0.1, vector_weight=0.1, weights={"image": 1.0})
    response = search.search("red circle", fusion=fusion, size=PER_CLASS, explain=True, source=["colour"])
    assert [h.id.split("-")[:2] for h in response.hits if h.id != "flaky"] == [["red", "circle"]] * len(
        [h for h in response.hits if h.id != "flaky"]
    ), [h.id for h in response.hits]
    explanation = response.hits[0].explanation
    assert explanation is not None and explanation.signals is not None and "image" in explanation.signals
    filtered = search.search("circle", filters=[{"term": {"colour": "blue"}}], fusion=fusion, size=5)
    assert filtered.hits and all(h.id.startswith("blue-") for h in filtered.hits)

    # Search by example image (no text): a new blue square finds the blue squares.
    example = shape_png("blue", "square", seed=99)
    by_image = search.search("", image=example, mode="knn", size=PER_CLASS)
    assert [h.id.rsplit("-", 1)[0] for h in by_image.hits] == ["blue-square"] * PER_CLASS

    # The async driver (real async transport and text client; the image signal's client in a worker thread)
    # answers what the sync driver answers, the image leg and its explain included.
    cases: list[tuple[str, dict[str, Any]]] = [
        ("red circle", {"fusion": fusion, "size": 5, "explain": True, "source": ["colour"]}),
        ("circle", {"filters": [{"term": {"colour": "blue"}}], "fusion": fusion, "size": 5, "explain": True}),
        ("", {"image": example, "mode": "knn", "size": PER_CLASS, "explain": True}),
        ("square", {"image": example, "size": 5, "explain": True}),
    ]

    async def run_async() -> list[SearchResponse]:
        async with await aconnect(cluster_url) as acluster, AsyncEmbeddingClient(embed_url, timeout_s=60) as text:
            # AsyncHybridSearch takes an async embed_query too (README); its Embedder type names the sync one.
            asearch = AsyncHybridSearch(acluster, index_name, embedder=text, image=signal)  # type: ignore[arg-type]
            # One at a time: concurrent queries would be batched (padded) by the text service, whose vectors may
            # then differ from the one-query requests of the sync driver in the last float bits.
            return [await asearch.search(q, **kw) for q, kw in cases]

    for (q, kw), answer in zip(cases, asyncio.run(run_async())):
        expected = search.search(q, **kw)
        _same(expected, answer)
        assert answer.hits and "image" in (answer.hits[0].explanation.signals or {})  # type: ignore[union-attr]
