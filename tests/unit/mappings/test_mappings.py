"""Golden-JSON tests of the mapping builders, one per server where the output differs.

Regenerate the golden files after an intended change with
``ESHYBRID_UPDATE_GOLDEN=1 pytest tests/unit/test_mappings.py`` and review the diff.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from connector.cluster.capabilities import Capabilities
from mappings import (
    TextField,
    VectorField,
    build_add_vector_field_body,
    build_index_body,
    vector_field_mapping,
)
from tests.unit._golden import GOLDEN_DIR, GoldenFiles

MODEL = "sentence-transformers/all-MiniLM-L6-v2"

SERVERS = {
    "es8": Capabilities.from_version("elasticsearch", "8.19.9", license="basic"),
    "es9": Capabilities.from_version("elasticsearch", "9.5.4", license="basic"),
    "os2": Capabilities.from_version("opensearch", "2.19.1"),
    "os3": Capabilities.from_version("opensearch", "3.6.0"),
}

TEXT_FIELDS = [
    TextField("title", analyzer="english", keyword_subfield=True),
    TextField("text", analyzer="english"),
    TextField("brand", keyword_subfield=True, keyword_ignore_above=128),
]

check_golden = GoldenFiles().check


@pytest.mark.parametrize("server", sorted(SERVERS))
def test_default_hybrid_index(server: str) -> None:
    body = build_index_body(
        SERVERS[server],
        text_fields=TEXT_FIELDS,
        vector_fields=[VectorField(dims=384, model_id=MODEL)],
        extra_properties={"price": {"type": "float"}},
    )
    check_golden(f"index_{server}", body)


def test_default_meta_is_the_contract() -> None:
    field = VectorField(dims=384, model_id=MODEL)
    body = build_index_body(SERVERS["es9"], text_fields=TEXT_FIELDS, vector_fields=[field])
    assert body["mappings"]["_meta"] == {
        "eshybrid": {
            "mapping_version": 1,
            "vector_fields": {
                "embedding": {
                    "model_id": MODEL,
                    "dims": 384,
                    "similarity": "cosine",
                    "pooling": "mean",
                    "normalized": True,
                    "source_fields": ["title", "text"],
                    "template": "{title}\n{text}",
                }
            },
            "migrations": {"current": None},
        }
    }


@pytest.mark.parametrize(
    ("name", "server", "options"),
    [
        ("es8_int8", "es8", {"quantization": "int8"}),
        ("es9_bbq", "es9", {"quantization": "bbq", "m": 32, "ef_construction": 200}),
        ("es9_int4_dot", "es9", {"quantization": "int4", "similarity": "dot_product"}),
        ("os2_lucene_int8", "os2", {"quantization": "int8"}),
        ("os3_lucene_int8", "os3", {"quantization": "int8"}),
        ("os2_faiss_fp16", "os2", {"engine": "faiss", "quantization": "fp16", "similarity": "l2_norm"}),
        ("os3_faiss_binary", "os3", {"engine": "faiss", "quantization": "binary", "similarity": "max_inner_product"}),
    ],
)
def test_vector_field_options(name: str, server: str, options: dict[str, Any]) -> None:
    field = VectorField(dims=384, model_id=MODEL, **options)
    check_golden(f"vector_{name}", vector_field_mapping(SERVERS[server], field))


def test_index_settings_and_custom_analyzer() -> None:
    analysis = {"analyzer": {"shop_text": {"type": "custom", "tokenizer": "standard", "filter": ["lowercase"]}}}
    body = build_index_body(
        SERVERS["os3"],
        text_fields=[TextField("title", analyzer="shop_text", search_analyzer="standard")],
        vector_fields=[VectorField("title_vector", dims=8, model_id="m", source_fields=("title",), template="{title}")],
        number_of_shards=2,
        number_of_replicas=0,
        refresh_interval="5s",
        analysis=analysis,
        migrations_current="0001_initial",
    )
    check_golden("index_os3_settings", body)


EXISTING_ES = {
    "_meta": {"owner": "catalog-team", "eshybrid": {"migrations": {"current": "0001_initial"}}},
    "properties": {
        "title": {"type": "text", "analyzer": "english"},
        "sku": {"type": "keyword"},
    },
}


@pytest.mark.parametrize("server", sorted(SERVERS))
def test_add_vector_field_body(server: str) -> None:
    existing = copy.deepcopy(EXISTING_ES)
    body = build_add_vector_field_body(
        SERVERS[server],
        existing_mapping=existing,
        vector_field=VectorField(dims=384, model_id=MODEL, source_fields=("title",), template="{title}"),
        index_settings={"index": {"knn": "true", "number_of_shards": "1"}},
    )
    assert existing == EXISTING_ES, "the builder must not mutate its input"
    assert set(body["properties"]) == {"embedding", "eshybrid_meta"}, "existing fields are not re-sent"
    assert body["_meta"]["owner"] == "catalog-team"
    assert body["_meta"]["eshybrid"]["migrations"] == {"current": "0001_initial"}
    if server in ("es9", "os3"):
        check_golden(f"add_vector_{server}", body)


def test_add_second_vector_field_keeps_the_first_in_meta() -> None:
    caps = SERVERS["es9"]
    first = build_index_body(caps, text_fields=TEXT_FIELDS, vector_fields=[VectorField(dims=384, model_id=MODEL)])
    mapping = first["mappings"]
    body = build_add_vector_field_body(
        caps,
        existing_mapping=mapping,
        vector_field=VectorField(
            "title_vector", dims=768, model_id="intfloat/e5-base-v2", source_fields=("title",), template="{title}"
        ),
    )
    assert sorted(body["_meta"]["eshybrid"]["vector_fields"]) == ["embedding", "title_vector"]
    assert body["_meta"]["eshybrid"]["vector_fields"]["embedding"]["dims"] == 384
    assert body["properties"]["eshybrid_meta"] == {
        "properties": {
            "title_vector": {"properties": {"model_id": {"type": "keyword"}, "text_hash": {"type": "keyword"}}}
        }
    }


def test_add_is_idempotent_when_the_field_exists_already() -> None:
    caps = SERVERS["os2"]
    field = VectorField(dims=384, model_id=MODEL)
    mapping = build_index_body(caps, text_fields=TEXT_FIELDS, vector_fields=[field])["mappings"]
    body = build_add_vector_field_body(caps, existing_mapping=mapping, vector_field=field)
    assert body["_meta"] == mapping["_meta"]
    assert body["properties"]["embedding"] == mapping["properties"]["embedding"]


def test_golden_files_are_all_used() -> None:
    expected = {f"index_{s}" for s in SERVERS} | {"index_os3_settings", "add_vector_es9", "add_vector_os3"}
    expected |= {
        f"vector_{n}"
        for n in (
            "es8_int8", "es9_bbq", "es9_int4_dot", "os2_lucene_int8", "os3_lucene_int8",
            "os2_faiss_fp16", "os3_faiss_binary",
        )
    }  # fmt: skip
    assert {p.stem for p in GOLDEN_DIR.glob("*.json") if not p.stem.startswith("other_")} >= expected
