"""The in-process query encoder against the real embedding service: the same vectors, and the _meta check.

Exports the default model with ``eshybrid export-query-encoder`` into a temporary cache, then embeds ESCI
queries both ways (``ESHYBRID_TEST_EMBED_URL`` reuses a running service; else the session's Ray Serve runs one).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from connector.cli.main import main
from connector.errors import ModelMismatchError
from connector.services.embedding import EmbeddingClient
from connector.services.query_encoder import QueryEncoder, local_query_encoder

pytestmark = [pytest.mark.integration, pytest.mark.ray]

_QUERIES = Path("/work/shared/data/esci-us-subset/queries.jsonl")
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
