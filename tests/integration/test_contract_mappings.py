"""The mapping builders against every real server (ES 9, ES 8, OpenSearch 3, OpenSearch 2).

Never name the faiss engine here: the dev clusters ship without its native
library and a write to a faiss field takes the node down.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from typing import Any

import pytest

from connector import Capabilities, Cluster, connect
from connector.errors import ClusterApiError, ConfigError
from mappings import (
    TextField,
    VectorField,
    build_add_vector_field_body,
    build_index_body,
    build_index_settings,
)
from tests.fixtures.clusters import url_for

pytestmark = [pytest.mark.integration]

DIMS = 8
MODEL = "test/one-hot-8"
# The standard analyzer: language analyzers live in the analysis-common module,
# which minimal (integ-test-zip) distributions do not ship.
TEXT_FIELDS = [TextField("title", keyword_subfield=True), TextField("text")]
DOCS = {
    "apple": ("Red apple juice", "Pressed from orchard apples", 0),
    "jacket": ("Blue denim jacket", "A sturdy jacket for autumn", 3),
    "tea": ("Green tea leaves", "Loose leaf tea from the hills", 6),
}


def doc_vector(axis: int, dims: int = DIMS) -> list[float]:
    """A unit vector close to one axis (never zero: cosine rejects zero vectors)."""
    raw = [0.05 * (i + 1) for i in range(dims)]
    raw[axis] = 1.0
    norm = math.sqrt(sum(x * x for x in raw))
    return [x / norm for x in raw]


def knn_body(caps: Capabilities, field: str, vector: Sequence[float], k: int = 3) -> dict[str, Any]:
    """The kNN request in the server's shape (what the query builder does, reduced)."""
    if caps.knn_shape == "es_knn_section":
        return {"knn": {"field": field, "query_vector": list(vector), "k": k, "num_candidates": 10}, "size": k}
    return {"query": {"knn": {field: {"vector": list(vector), "k": k}}}, "size": k}


def hit_ids(response: dict[str, Any]) -> list[str]:
    return [hit["_id"] for hit in response["hits"]["hits"]]


def index_settings_of(cluster: Cluster, index: str) -> dict[str, Any]:
    body = cluster.request("GET", f"/{index}/_settings").body
    settings: dict[str, Any] = next(iter(body.values()))["settings"]
    return settings


def bulk_ok(cluster: Cluster, lines: list[dict[str, Any]]) -> None:
    result = cluster.bulk(lines, refresh="wait_for")
    assert not result["errors"], [i for i in result["items"] if "error" in next(iter(i.values()))]


def test_connect_detects_capabilities(cluster: Cluster, cluster_key: str) -> None:
    caps = cluster.capabilities
    flavor = "elasticsearch" if cluster_key.startswith("es") else "opensearch"
    assert caps.flavor == flavor
    assert caps.major == int(cluster_key[2:])
    assert caps.vector_field_type == ("dense_vector" if flavor == "elasticsearch" else "knn_vector")
    assert caps.plugins_known
    if flavor == "elasticsearch":
        assert "es_query_knn" in caps.hybrid_forms
        assert caps.knn_shape == "es_knn_section"
    else:
        assert "opensearch-knn" in caps.plugins
        assert caps.knn_shape == "os_knn_query"
        assert caps.supports("os_hybrid_query") == ("opensearch-neural-search" in caps.plugins)
    assert str(caps).startswith(caps.display_name)


def test_new_hybrid_index_bm25_and_knn(cluster: Cluster, index_name: str) -> None:
    caps = cluster.capabilities
    field = VectorField(dims=DIMS, model_id=MODEL)
    body = build_index_body(caps, text_fields=TEXT_FIELDS, vector_fields=[field], number_of_replicas=0)
    try:
        cluster.create_index(index_name, body)
        lines: list[dict[str, Any]] = []
        for doc_id, (title, text, axis) in DOCS.items():
            lines.append({"index": {"_index": index_name, "_id": doc_id}})
            lines.append({"title": title, "text": text, "embedding": doc_vector(axis)})
        bulk_ok(cluster, lines)

        lexical = cluster.search(index_name, {"query": {"match": {"title": "denim JACKET"}}})
        assert hit_ids(lexical) == ["jacket"]
        semantic = cluster.search(index_name, knn_body(caps, "embedding", doc_vector(6)))
        assert hit_ids(semantic)[0] == "tea"
        exact = cluster.search(index_name, {"query": {"term": {"title.keyword": "Red apple juice"}}})
        assert hit_ids(exact) == ["apple"]

        mapping = cluster.get_mapping(index_name)
        assert mapping["_meta"] == body["mappings"]["_meta"], "_meta is stored as the contract says"
        assert mapping["properties"]["embedding"]["type"] == caps.vector_field_type
        assert mapping["properties"]["eshybrid_meta"]["properties"]["embedding"]["properties"] == {
            "model_id": {"type": "keyword"},
            "text_hash": {"type": "keyword"},
        }
    finally:
        cluster.delete_index(index_name)


def test_add_vector_field_in_place(cluster: Cluster, index_name: str) -> None:
    caps = cluster.capabilities
    existing = {
        # A shop's BM25 index (on OpenSearch created with index.knn, which only a new index can get).
        "settings": build_index_settings(caps, number_of_replicas=0),
        "mappings": {
            "_meta": {"owner": "catalog-team"},
            "properties": {
                "title": {"type": "text", "analyzer": "standard"},
                "text": {"type": "text"},
                "sku": {"type": "keyword"},
            },
        },
    }
    field = VectorField(dims=DIMS, model_id=MODEL)
    try:
        cluster.create_index(index_name, existing)
        lines: list[dict[str, Any]] = []
        for doc_id, (title, text, _) in DOCS.items():
            lines.append({"index": {"_index": index_name, "_id": doc_id}})
            lines.append({"title": title, "text": text, "sku": doc_id.upper()})
        bulk_ok(cluster, lines)
        old = cluster.get_mapping(index_name)

        update = build_add_vector_field_body(
            caps, existing_mapping=old, vector_field=field, index_settings=index_settings_of(cluster, index_name)
        )
        cluster.put_mapping(index_name, update)
        new = cluster.get_mapping(index_name)
        for name, definition in old["properties"].items():
            assert new["properties"][name] == definition, f"existing field {name} changed"
        assert new["_meta"]["owner"] == "catalog-team"
        assert new["_meta"]["eshybrid"]["vector_fields"]["embedding"]["dims"] == DIMS
        assert new["properties"]["embedding"]["type"] == caps.vector_field_type

        # Every old document is still found by BM25, before any vector exists.
        assert cluster.count(index_name) == len(DOCS)
        for doc_id, (title, _, _) in DOCS.items():
            assert hit_ids(cluster.search(index_name, {"query": {"match": {"title": title}}}))[0] == doc_id

        # Backfill-style partial updates: vector + bookkeeping beside the old fields.
        lines = []
        for doc_id, (title, text, axis) in DOCS.items():
            text_hash = hashlib.sha256(f"{title}\n{text}".encode()).hexdigest()
            lines.append({"update": {"_index": index_name, "_id": doc_id}})
            bookkeeping = {"embedding": {"model_id": MODEL, "text_hash": text_hash}}
            lines.append({"doc": {"embedding": doc_vector(axis), "eshybrid_meta": bookkeeping}})
        bulk_ok(cluster, lines)
        assert hit_ids(cluster.search(index_name, knn_body(caps, "embedding", doc_vector(0))))[0] == "apple"
        assert hit_ids(cluster.search(index_name, {"query": {"match": {"text": "autumn"}}})) == ["jacket"]
        assert hit_ids(cluster.search(index_name, {"query": {"term": {"sku": "TEA"}}})) == ["tea"]
        assert cluster.count(index_name, {"term": {"eshybrid_meta.embedding.model_id": MODEL}}) == len(DOCS)

        # Sending the same update again is harmless and changes nothing.
        cluster.put_mapping(index_name, update)
        assert cluster.get_mapping(index_name) == new
    finally:
        cluster.delete_index(index_name)


@pytest.mark.parametrize("server", [pytest.param(k, marks=getattr(pytest.mark, k)) for k in ("os3", "os2")])
def test_opensearch_index_without_index_knn_is_refused(
    request: pytest.FixtureRequest, server: str, index_name: str
) -> None:
    cluster = connect(url_for(request, server))
    request.addfinalizer(cluster.close)
    caps = cluster.capabilities
    assert caps.requires_knn_index_setting
    try:
        cluster.create_index(index_name, {"mappings": {"properties": {"title": {"type": "text"}}}})
        settings = index_settings_of(cluster, index_name)
        field = VectorField(dims=DIMS, model_id=MODEL)
        with pytest.raises(ConfigError, match="reindex"):
            build_add_vector_field_body(
                caps, existing_mapping=cluster.get_mapping(index_name), vector_field=field, index_settings=settings
            )
        # The server agrees: without the check it would refuse the same body.
        raw = build_add_vector_field_body(caps, existing_mapping=cluster.get_mapping(index_name), vector_field=field)
        with pytest.raises(ClusterApiError, match="index.knn"):
            cluster.put_mapping(index_name, raw)
    finally:
        cluster.delete_index(index_name)


def test_every_offered_quantization_is_accepted(cluster: Cluster, index_name: str) -> None:
    caps = cluster.capabilities
    dims = 64  # bbq's minimum
    created: list[str] = []
    try:
        for quantization in caps.quantizations():  # the default engine only (never faiss here)
            name = f"{index_name}-{quantization}"
            field = VectorField(dims=dims, model_id=MODEL, quantization=quantization)
            body = build_index_body(caps, text_fields=TEXT_FIELDS, vector_fields=[field], number_of_replicas=0)
            cluster.create_index(name, body)
            created.append(name)
            lines: list[dict[str, Any]] = []
            for doc_id, (title, text, axis) in DOCS.items():
                lines.append({"index": {"_index": name, "_id": doc_id}})
                lines.append({"title": title, "text": text, "embedding": doc_vector(axis * 7, dims)})
            bulk_ok(cluster, lines)
            top = hit_ids(cluster.search(name, knn_body(caps, "embedding", doc_vector(42, dims))))
            assert top[0] == "tea", f"{quantization}: {top}"
    finally:
        for name in created:
            cluster.delete_index(name)
