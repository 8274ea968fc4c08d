"""Validation of mapping specs: every error is a ConfigError (a ValueError) naming the field."""

from __future__ import annotations

from typing import Any

import pytest

from connector.cluster.capabilities import Capabilities
from connector.errors import ConfigError
from mappings import (
    TextField,
    VectorField,
    build_add_vector_field_body,
    build_index_body,
    knn_enabled,
    merge_index_meta,
    vector_field_mapping,
)

ES9 = Capabilities.from_version("elasticsearch", "9.5.4")
ES8_OLD = Capabilities.from_version("elasticsearch", "8.11.0")
OS2 = Capabilities.from_version("opensearch", "2.19.1")
OS2_OLD = Capabilities.from_version("opensearch", "2.15.0")


def vector(**options: Any) -> VectorField:
    options.setdefault("dims", 384)
    options.setdefault("model_id", "m")
    return VectorField(options.pop("name", "embedding"), **options)


def assert_config_error(err: pytest.ExceptionInfo[ConfigError], *, field: str, words: tuple[str, ...]) -> None:
    assert isinstance(err.value, ValueError)
    assert err.value.field == field
    message = str(err.value)
    assert repr(field) in message or field in message
    for word in words:
        assert word in message, f"{word!r} not in {message!r}"


@pytest.mark.parametrize("dims", [0, -3, True, 1.5])
def test_dims_must_be_positive_int(dims: Any) -> None:
    with pytest.raises(ConfigError) as err:
        vector(name="img_vec", dims=dims)
    assert_config_error(err, field="img_vec", words=("dims", "positive"))


def test_unknown_similarity() -> None:
    with pytest.raises(ConfigError) as err:
        vector(similarity="cosinus")
    assert_config_error(err, field="embedding", words=("cosinus", "cosine, dot_product"))


def test_dot_product_needs_unit_vectors() -> None:
    with pytest.raises(ConfigError) as err:
        vector(similarity="dot_product", normalized=False)
    assert_config_error(err, field="embedding", words=("max_inner_product",))


@pytest.mark.parametrize(("option", "value"), [("m", 1), ("m", 600), ("ef_construction", 1), ("ef_construction", 5000)])
def test_hnsw_bounds(option: str, value: int) -> None:
    with pytest.raises(ConfigError) as err:
        vector(**{option: value})
    assert_config_error(err, field="embedding", words=(option,))


def test_template_must_use_source_fields() -> None:
    with pytest.raises(ConfigError) as err:
        vector(source_fields=("title",), template="{title} {body}")
    assert_config_error(err, field="embedding", words=("body", "source_fields"))
    with pytest.raises(ConfigError):
        vector(source_fields=(), template="")
    with pytest.raises(ConfigError):
        vector(template="{title")


def test_bbq_needs_64_dims() -> None:
    with pytest.raises(ConfigError) as err:
        vector_field_mapping(ES9, vector(name="small", dims=32, quantization="bbq"))
    assert_config_error(err, field="small", words=("bbq", "64"))
    assert vector_field_mapping(ES9, vector(dims=64, quantization="bbq"))["index_options"]["type"] == "bbq_hnsw"


def test_int4_needs_even_dims() -> None:
    with pytest.raises(ConfigError) as err:
        vector_field_mapping(ES9, vector(dims=385, quantization="int4"))
    assert_config_error(err, field="embedding", words=("int4", "even"))


def test_quantization_offered_by_the_server_only() -> None:
    with pytest.raises(ConfigError) as err:
        vector_field_mapping(ES9, vector(quantization="fp16"))
    assert_config_error(err, field="embedding", words=("fp16", "Elasticsearch 9.5.4", "int8"))
    with pytest.raises(ConfigError) as err:
        vector_field_mapping(ES8_OLD, vector(quantization="int8"))
    assert_config_error(err, field="embedding", words=("8.11.0", "available: none"))
    with pytest.raises(ConfigError) as err:
        vector_field_mapping(OS2_OLD, vector(quantization="int8"))
    assert_config_error(err, field="embedding", words=("lucene", "int8"))
    with pytest.raises(ConfigError) as err:
        vector_field_mapping(OS2, vector(quantization="binary"))  # faiss only
    assert_config_error(err, field="embedding", words=("binary", "engine lucene"))


def test_engine_is_an_opensearch_option() -> None:
    with pytest.raises(ConfigError) as err:
        vector_field_mapping(ES9, vector(engine="lucene"))
    assert_config_error(err, field="embedding", words=("engine", "leave engine unset"))
    with pytest.raises(ConfigError):
        vector(engine="nmslib")


def test_dims_limits_per_server() -> None:
    with pytest.raises(ConfigError) as err:
        vector_field_mapping(ES9, vector(dims=5000))
    assert_config_error(err, field="embedding", words=("5000", "4096"))
    assert vector_field_mapping(OS2, vector(dims=5000))["dimension"] == 5000


def test_field_names() -> None:
    for bad in ("_id", "", "a..b", "with space", ".x", "x."):
        with pytest.raises(ConfigError):
            TextField(bad)
    with pytest.raises(ConfigError):
        vector(name="_vector")
    assert TextField("product.title").name == "product.title"


def test_unknown_analyzer_and_custom_analyzer() -> None:
    with pytest.raises(ConfigError) as err:
        build_index_body(ES9, text_fields=[TextField("title", analyzer="englsh")])
    assert_config_error(err, field="title", words=("englsh", "analysis.analyzer"))
    with pytest.raises(ConfigError) as err:
        build_index_body(ES9, text_fields=[TextField("title", search_analyzer="mine")])
    assert_config_error(err, field="title", words=("search_analyzer",))
    analysis = {"analyzer": {"mine": {"type": "custom", "tokenizer": "standard"}}}
    body = build_index_body(ES9, text_fields=[TextField("title", analyzer="mine")], analysis=analysis)
    assert body["settings"]["analysis"] == analysis


def test_duplicate_and_reserved_names() -> None:
    with pytest.raises(ConfigError) as err:
        build_index_body(ES9, text_fields=[TextField("title")], vector_fields=[vector(name="title")])
    assert_config_error(err, field="title", words=("twice",))
    with pytest.raises(ConfigError):
        build_index_body(
            ES9, text_fields=[TextField("title")], vector_fields=[vector()],
            extra_properties={"eshybrid_meta": {"type": "keyword"}},
        )  # fmt: skip


def test_shard_counts() -> None:
    with pytest.raises(ConfigError) as err:
        build_index_body(ES9, text_fields=[], number_of_shards=0)
    assert err.value.field == "number_of_shards"
    with pytest.raises(ConfigError):
        build_index_body(ES9, text_fields=[], number_of_replicas=-1)


def test_bm25_only_index_has_no_vector_bits_but_opensearch_gets_index_knn() -> None:
    es = build_index_body(ES9, text_fields=[TextField("title")])
    assert es["mappings"]["properties"] == {"title": {"type": "text", "analyzer": "standard"}}
    assert es["settings"] == {"index": {}}
    assert es["mappings"]["_meta"]["eshybrid"]["vector_fields"] == {}
    os_ = build_index_body(OS2, text_fields=[TextField("title")])
    assert os_["settings"] == {"index": {"knn": True}}, "so a vector field can be added in place later"


# -- adding a vector field to an existing index -------------------------------------------


def test_add_refuses_a_name_taken_by_another_field() -> None:
    existing = {"properties": {"embedding": {"type": "text"}}}
    with pytest.raises(ConfigError) as err:
        build_add_vector_field_body(ES9, existing_mapping=existing, vector_field=vector())
    assert_config_error(err, field="embedding", words=("already has a field", "text"))
    other_dims = {"properties": {"embedding": {"type": "dense_vector", "dims": 768}}}
    with pytest.raises(ConfigError) as err:
        build_add_vector_field_body(ES9, existing_mapping=other_dims, vector_field=vector())
    assert_config_error(err, field="embedding", words=("768", "384"))


def test_add_refuses_a_taken_bookkeeping_name() -> None:
    existing = {"properties": {"eshybrid_meta": {"type": "keyword"}}}
    with pytest.raises(ConfigError) as err:
        build_add_vector_field_body(ES9, existing_mapping=existing, vector_field=vector())
    assert err.value.field == "eshybrid_meta"


def test_add_on_opensearch_needs_index_knn() -> None:
    with pytest.raises(ConfigError) as err:
        build_add_vector_field_body(
            OS2, existing_mapping={"properties": {}}, vector_field=vector(),
            index_settings={"index": {"number_of_shards": "1"}},
        )  # fmt: skip
    assert_config_error(err, field="embedding", words=("index.knn", "reindex", "OpenSearch 2.19.1"))
    # Elasticsearch has no such setting.
    build_add_vector_field_body(ES9, existing_mapping={}, vector_field=vector(), index_settings={"index": {}})


@pytest.mark.parametrize(
    ("settings", "expected"),
    [
        ({"index": {"knn": "true"}}, True),
        ({"index": {"knn": True}}, True),
        ({"settings": {"index": {"knn": "true"}}}, True),
        ({"index.knn": "true"}, True),
        ({"index": {"knn": "false"}}, False),
        ({"index": {}}, False),
        ({}, False),
    ],
)
def test_knn_enabled(settings: dict[str, Any], expected: bool) -> None:
    assert knn_enabled(settings) is expected


def test_merge_meta_keeps_foreign_keys() -> None:
    existing: dict[str, Any] = {
        "owner": "x",
        "eshybrid": {"mapping_version": 1, "custom": 1, "vector_fields": {"old": {"dims": 3}}},
    }
    merged = merge_index_meta(existing, vector())
    assert merged["owner"] == "x"
    assert merged["eshybrid"]["custom"] == 1
    assert set(merged["eshybrid"]["vector_fields"]) == {"old", "embedding"}
    assert merged["eshybrid"]["migrations"] == {"current": None}
    assert existing["eshybrid"]["vector_fields"] == {"old": {"dims": 3}}  # not mutated
    with pytest.raises(ConfigError):
        merge_index_meta({"eshybrid": "v1"}, vector())
