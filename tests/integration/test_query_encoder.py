"""The in-process query encoder against the real embedding service: the same vectors, and the _meta check.

Exports the default model with ``eshybrid export-query-encoder`` into a temporary cache, then embeds ESCI
queries both ways (``ESHYBRID_TEST_EMBED_URL`` reuses a running service; else the session's Ray Serve runs one).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from connector import connect
from connector.cli.main import main
from connector.errors import ModelMismatchError
from connector.search import HybridSearch
from connector.services.embedding import EmbeddingClient
from connector.services.query_encoder import QueryEncoder, local_query_encoder
from tests.fixtures.products import create_products_index, rows_of

pytestmark = [pytest.mark.integration, pytest.mark.ray]

# ../shared beside the checkout (CI lays a copy of shared/ there)
_QUERIES = Path(__file__).resolve().parents[3] / "shared" / "data" / "esci-us-subset" / "queries.jsonl"
_FALLBACK_QUERIES = [
    "1/2 inch binder",
    "apple earbuds",
    "wireless noise cancelling headphones for running",
    "Kindle Paperwhite waterproof",
    "baby shower gifts",
    "dog bed XL washable",
]


def _queries(count: int) -> list[str]:
    if not _QUERIES.is_file():
        return _FALLBACK_QUERIES
    with _QUERIES.open(encoding="utf-8") as lines:
        return [json.loads(line)["text"] for _, line in zip(range(count), lines)]


@pytest.fixture(autouse=True)
def _encoder_enabled(monkeypatch: pytest.MonkeyPatch) -> None:
    """tests/conftest.py turns the in-process encoder off for the rest of the suite; here it is the subject."""
    monkeypatch.setenv("ESHYBRID_QUERY_ENCODER_ENABLED", "true")


@pytest.fixture(scope="module")
def export_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    cache = tmp_path_factory.mktemp("query-encoder")
    assert main(["export-query-encoder", "--cache-dir", str(cache)]) == 0
    (folder,) = [p for p in cache.iterdir() if (p / "encoder.json").is_file()]
    return folder


def test_vectors_equal_the_services_on_esci_queries(embed_url: str, export_folder: Path) -> None:
    queries = _queries(200)
    with EmbeddingClient(embed_url, query_cache_size=0) as client:
        info = client.info()
        served = np.asarray(client.embed(queries, input_type="query"), dtype=np.float32)
    meta = {"model_id": info.model_id, "dims": info.dims, "pooling": info.pooling, "normalized": info.normalized}
    encoder = local_query_encoder(meta, model_dir=export_folder)
    assert isinstance(encoder, QueryEncoder)
    local = np.asarray([encoder.embed_query(text) for text in queries], dtype=np.float32)
    cosines = np.sum(local * served, axis=1) / (np.linalg.norm(local, axis=1) * np.linalg.norm(served, axis=1))
    assert float(cosines.min()) >= 0.999, sorted(zip(cosines.tolist(), queries))[:3]
    np.testing.assert_allclose(encoder.embed_queries(queries[:8]), local[:8], atol=1e-4)


def test_an_index_of_another_model_or_variant_is_refused(export_folder: Path) -> None:
    encoder = QueryEncoder.load(export_folder)
    meta = {"model_id": encoder.manifest.model_id, "dims": 384, "pooling": "mean", "normalized": True}
    encoder.check_compatible(meta)
    with pytest.raises(ModelMismatchError, match="model_id"):
        encoder.check_compatible({**meta, "model_id": "BAAI/bge-small-en-v1.5"})
    with pytest.raises(ModelMismatchError, match="model_quantization"):
        local_query_encoder({**meta, "model_quantization": "int8"}, model_dir=export_folder)


@pytest.mark.es9
def test_hybrid_search_embeds_queries_in_process_when_the_export_is_there(
    es9_url: str, embed_url: str, export_folder: Path, index_name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The default path of issue 24: a service client as the embedder, the export found -> queries in process,
    the same hits as when every query goes to the service."""
    products = [
        ("p1", "waterproof dome tent", "two person tent for rain and wind"),
        ("p2", "camping stove", "compact gas burner for cooking outdoors"),
        ("p3", "rain jacket", "breathable waterproof shell jacket"),
        ("p4", "sleeping bag", "warm down bag for winter nights"),
        ("p5", "headlamp", "a flashlight you wear on your head for night hikes"),
    ]
    queries = ["something to keep me dry in a storm", "light for walking at night", "cook dinner outside"]
    with connect(es9_url) as cluster, EmbeddingClient(embed_url) as loader:
        create_products_index(cluster, index_name, loader, rows_of(products))

        def run(local: bool) -> tuple[bool, list[list[str]]]:
            monkeypatch.setenv("ESHYBRID_QUERY_ENCODER_ENABLED", "true" if local else "false")
            monkeypatch.setenv("ESHYBRID_QUERY_ENCODER_MODEL_DIR", str(export_folder))
            with HybridSearch(cluster, index_name, embedder=EmbeddingClient(embed_url), embed_budget_s=5.0) as search:
                ids = [search.search(text, size=3, mode="knn", correct="off").ids for text in queries]
                assert search._query_vectors is not None
                return search._query_vectors.local, ids

        local_used, local_ids = run(local=True)
        service_used, service_ids = run(local=False)
    assert local_used and not service_used
    assert local_ids == service_ids
