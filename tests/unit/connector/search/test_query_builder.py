"""Golden-JSON tests of the hybrid query builders, filters, console rendering and planning.

Regenerate the golden files after an intended change with
``ESHYBRID_UPDATE_GOLDEN=1 pytest tests/unit/test_query_builder.py`` and review the diff.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from connector.cluster.capabilities import Capabilities
from connector.errors import ConfigError, PaginationDepthError, SearchRequestError
from connector.search import query_builder as qb
from connector.search._profile import profile_from_mapping
from connector.search.console import render_console
from connector.search.explain import format_hits
from connector.search.filters import parse_filter_expression, validate_filters
from connector.search.hybrid import HybridSearch
from connector.search.models import (
    ExecutedRequest,
    FusionConfig,
    HitExplanation,
    LegExplanation,
    SearchHit,
    SearchResponse,
)
from tests.unit._golden import GoldenFiles

VECTOR = [0.25, -0.5, 0.125]
FIELDS = {"title": 2.0, "text": 1.0}
FILTERS = [{"term": {"brand.keyword": "Acme"}}, {"range": {"price": {"lte": 100}}}]

SERVERS = {
    "es9": Capabilities.from_version("elasticsearch", "9.5.4", license="basic"),
    "es9_enterprise": Capabilities.from_version("elasticsearch", "9.5.4", license="enterprise"),
    "os2": Capabilities.from_version("opensearch", "2.19.1"),
    "os3_neural": Capabilities.from_version(
        "opensearch", "3.6.0", plugins=["opensearch-knn", "opensearch-neural-search"]
    ),
    "os2_17_neural": Capabilities.from_version(
        "opensearch", "2.17.0", plugins=["opensearch-knn", "opensearch-neural-search"]
    ),
}


check_golden = GoldenFiles(prefix="search_").check


def lexical() -> dict[str, Any]:
    return qb.lexical_query("red tent", fields=FIELDS, filters=FILTERS, tie_breaker=0.3)


def test_lexical_query_golden() -> None:
    check_golden("lexical_query", lexical())


def test_user_text_never_reaches_a_query_parser() -> None:
    nasty = 'title:(secret) OR _exists_:password AND "unbalanced'
    body = qb.lexical_leg_body(qb.lexical_query(nasty, fields=FIELDS), size=10)
    dumped = json.dumps(body)
    assert "query_string" not in dumped and "simple_query_string" not in dumped
    assert body["query"]["bool"]["must"][0]["multi_match"]["query"] == nasty


@pytest.mark.parametrize("server", ["es9", "os2"])
def test_knn_leg_golden(server: str) -> None:
    body = qb.knn_leg_body(
        VECTOR, knn_shape=SERVERS[server].knn_leg_shape, field="embedding", k=100, num_candidates=200, filters=FILTERS
    )
    check_golden(f"knn_leg_{server}", body)


def test_knn_leg_filters_are_inside_knn() -> None:
    es = qb.knn_leg_body(VECTOR, knn_shape="es_knn_section", field="v", k=5, num_candidates=3, filters=FILTERS)
    assert es["knn"]["filter"] == FILTERS and "query" not in es and "post_filter" not in es
    assert es["knn"]["num_candidates"] == 5  # never below k
    query = qb.knn_leg_body(VECTOR, knn_shape="es_knn_query", field="v", k=5, num_candidates=3, filters=FILTERS)
    assert query["query"]["knn"]["filter"] == FILTERS and "knn" not in query and "post_filter" not in query
    assert query["query"]["knn"]["num_candidates"] == 5 and query["size"] == 5  # size is k
    os_ = qb.knn_leg_body(VECTOR, knn_shape="os_knn_query", field="v", k=5, num_candidates=50, filters=FILTERS)
    assert os_["query"]["knn"]["v"]["filter"] == {"bool": {"filter": FILTERS}} and "post_filter" not in os_


def test_server_forms_golden() -> None:
    knn = qb.es_knn_section(VECTOR, field="embedding", k=100, num_candidates=200, filters=FILTERS)
    os_knn = qb.os_knn_query(VECTOR, field="embedding", k=100, filters=FILTERS)
    linear = FusionConfig(method="linear", lexical_weight=0.3, vector_weight=0.7)
    raw = FusionConfig(method="linear", normalizer="none", lexical_weight=0.3, vector_weight=0.7)
    page = {"size": 10, "from_": 10, "source": {"excludes": ["embedding"]}}
    check_golden("es_query_knn", qb.es_query_knn_body(lexical(), knn, fusion=raw, **page))
    check_golden("es_rrf_retriever", qb.es_rrf_retriever_body(lexical(), knn, fusion=FusionConfig(), depth=100, **page))
    check_golden("es_linear_retriever", qb.es_linear_retriever_body(lexical(), knn, fusion=linear, depth=100, **page))
    check_golden("os_hybrid", qb.os_hybrid_body(lexical(), os_knn, depth=100, **page))
    check_golden("os_pipeline_linear", qb.os_pipeline_body(linear))
    check_golden("os_pipeline_rrf", qb.os_pipeline_body(FusionConfig()))
    check_golden("mget", qb.mget_body([("i1", "a", None), ("i2", "b", "r1")]))


def test_os_pipeline_weights_sum_to_one_and_names_are_stable() -> None:
    body = qb.os_pipeline_body(FusionConfig(method="linear", lexical_weight=1, vector_weight=3))
    weights = body["phase_results_processors"][0]["normalization-processor"]["combination"]["parameters"]["weights"]
    assert weights == [0.25, 0.75]
    a = qb.os_pipeline_name(FusionConfig(method="linear"))
    assert a == qb.os_pipeline_name(FusionConfig(method="linear")) and a.startswith("eshybrid-linear-")
    assert a != qb.os_pipeline_name(FusionConfig(method="linear", normalizer="l2"))
    with pytest.raises(SearchRequestError):
        qb.os_pipeline_body(FusionConfig(method="linear", normalizer="z_score"))


@pytest.mark.parametrize(
    ("server", "fusion", "missing_policy", "expected"),
    [
        ("es9", FusionConfig(), None, None),
        ("es9", FusionConfig(method="linear"), None, None),
        ("es9", FusionConfig(method="linear", normalizer="none"), None, "es_query_knn"),
        ("es9_enterprise", FusionConfig(), None, "es_rrf_retriever"),
        ("es9_enterprise", FusionConfig(lexical_weight=2), None, None),
        ("es9_enterprise", FusionConfig(method="linear"), None, "es_linear_retriever"),
        ("es9_enterprise", FusionConfig(method="linear", missing="ignore"), None, None),
        ("os2", FusionConfig(method="linear"), "zero", None),
        ("os3_neural", FusionConfig(method="linear"), "zero", "os_hybrid_query"),
        ("os3_neural", FusionConfig(method="linear", normalizer="l2"), "zero", "os_hybrid_query"),
        ("os3_neural", FusionConfig(method="linear", missing="ignore"), "zero", None),
        ("os3_neural", FusionConfig(method="linear", normalizer="z_score"), "zero", None),
        ("os3_neural", FusionConfig(), "zero", "os_hybrid_query"),
        ("os2_17_neural", FusionConfig(method="linear"), "zero", None),  # no pagination_depth before 2.19
    ],
)
def test_pick_server_form(server: str, fusion: FusionConfig, missing_policy: str | None, expected: str | None) -> None:
    assert qb.pick_server_form(SERVERS[server], fusion, os_missing_policy=missing_policy) == expected


# -- filters ---------------------------------------------------------------------------


def test_validate_filters() -> None:
    assert validate_filters(None) == []
    assert validate_filters(FILTERS) == FILTERS
    nested_ok = [{"bool": {"should": [{"term": {"a": 1}}, {"range": {"b": {"gt": 2}}}], "minimum_should_match": 1}}]
    assert validate_filters(nested_ok) == nested_ok
    with pytest.raises(SearchRequestError) as err:
        validate_filters([{"term": {"a": 1}}, {"query_string": {"query": "x"}}])
    assert err.value.field == "filters[1]"  # type: ignore[attr-defined]
    with pytest.raises(SearchRequestError) as err:
        validate_filters([{"bool": {"must": [{"script": {"script": "1"}}]}}])
    assert err.value.field == "filters[0].bool.must[0]"  # type: ignore[attr-defined]
    for bad in ({"term": {"a": 1}}, "brand=x", [{"term": {"a": 1}, "range": {}}], [{"term": "x"}]):
        with pytest.raises(SearchRequestError):
            validate_filters(bad)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("expression", "clause"),
    [
        ("brand.keyword=Acme", {"term": {"brand.keyword": "Acme"}}),
        ("in_stock=true", {"term": {"in_stock": True}}),
        ("color!=red", {"bool": {"must_not": [{"term": {"color": "red"}}]}}),
        ("price>=10", {"range": {"price": {"gte": 10}}}),
        ("price<19.5", {"range": {"price": {"lt": 19.5}}}),
        ("year > 2001", {"range": {"year": {"gt": 2001}}}),
        ('{"exists": {"field": "price"}}', {"exists": {"field": "price"}}),
    ],
)
def test_parse_filter_expression(expression: str, clause: dict[str, Any]) -> None:
    assert parse_filter_expression(expression) == clause


@pytest.mark.parametrize("bad", ["price", "=3", "price>=", '{"script": {}}', "{nope"])
def test_parse_filter_expression_errors(bad: str) -> None:
    with pytest.raises(SearchRequestError):
        parse_filter_expression(bad)


# -- console ---------------------------------------------------------------------------


def parse_console(text: str) -> list[tuple[str, str, list[Any]]]:
    """Split console text into (method, path, bodies); every body line must be JSON."""
    blocks: list[tuple[str, str, list[Any]]] = []
    current: list[str] = []
    for line in text.splitlines() + [""]:
        if line.startswith("#"):
            continue
        if line.strip():
            current.append(line)
            continue
        if current:
            method, path = current[0].split(" ", 1)
            rest = current[1:]
            if path.split("?")[0].endswith("_msearch"):
                bodies = [json.loads(item) for item in rest]
            else:
                bodies = [json.loads("\n".join(rest))] if rest else []
            blocks.append((method, path, bodies))
            current = []
    return blocks


def test_console_rendering_parses_back() -> None:
    legs = [
        {},
        {"query": lexical(), "size": 100},
        {},
        {"knn": qb.es_knn_section(VECTOR, field="e", k=5, num_candidates=10)},
    ]
    requests = [
        ExecutedRequest(method="PUT", path="_search/pipeline/p1", body={"a": [1, 2]}, note="pipeline"),
        ExecutedRequest(method="GET", path="products/_msearch", ndjson=legs, note="legs"),
        ExecutedRequest(
            method="GET",
            path="/products/_search",
            params={"search_pipeline": "p1"},
            body={"query": {"match_all": {}}, "knn": {"query_vector": VECTOR}},
        ),
    ]
    text = render_console(requests, header="eshybrid search: mode=hybrid")
    assert text.startswith("# eshybrid search")
    blocks = parse_console(text)
    assert [(m, p) for m, p, _ in blocks] == [
        ("PUT", "_search/pipeline/p1"),
        ("GET", "products/_msearch"),
        ("GET", "products/_search?search_pipeline=p1"),
    ]
    assert blocks[1][2] == legs
    assert blocks[2][2][0]["knn"]["query_vector"] == VECTOR
    assert json.dumps(VECTOR, separators=(",", ":")) in text  # vectors stay on one line


# -- index profile -----------------------------------------------------------------------


MAPPING = {
    "_meta": {
        "eshybrid": {
            "vector_fields": {
                "embedding": {
                    "model_id": "m",
                    "dims": 3,
                    "source_fields": ["title", "text"],
                    "template": "{title}\n{text}",
                }
            }
        }
    },
    "properties": {
        "title": {"type": "text"},
        "text": {"type": "text"},
        "brand": {"type": "keyword"},
        "meta": {"properties": {"notes": {"type": "text"}}},
        "embedding": {"type": "dense_vector", "dims": 3},
        "nested_things": {"type": "nested", "properties": {"x": {"type": "text"}}},
    },
}


def test_profile_from_mapping() -> None:
    profile = profile_from_mapping(MAPPING, index="p")
    assert profile.vector_field == "embedding" and profile.has_vector_field
    assert profile.lexical_fields == {"title": 3.0, "text": 1.0}  # default title boost (issue 13)
    assert profile.text_fields == ("title", "text", "meta.notes")
    plain = profile_from_mapping({"properties": {"title": {"type": "text"}, "body": {"type": "text"}}}, index="p")
    assert plain.lexical_fields == {"title": 3.0, "body": 1.0} and not plain.has_vector_field
    custom = profile_from_mapping(MAPPING, index="p", lexical_fields={"title": 3})
    assert custom.lexical_fields == {"title": 3.0}
    assert profile.template == "{title}\n{text}"
    with pytest.raises(ConfigError):
        profile_from_mapping({"properties": {"n": {"type": "long"}}}, index="p")


# -- planning without a cluster ----------------------------------------------------------


class _OfflineCluster:
    """Answers what planning reads (mapping, capabilities); sends nothing."""

    def __init__(self, caps: Capabilities) -> None:
        self.capabilities = caps

    def get_mapping(self, index: str) -> dict[str, Any]:
        return MAPPING


class _Embedder:
    def embed_query(self, text: str) -> list[float]:
        return VECTOR


def test_request_validation_names_the_field() -> None:
    search = HybridSearch(_OfflineCluster(SERVERS["es9"]), "p", embedder=_Embedder(), max_depth=50)
    cases = [
        ({"text": ""}, "text"),
        ({"text": "x", "mode": "fuzzy"}, "mode"),
        ({"text": "x", "size": 0}, "size"),
        ({"text": "x", "size": 51}, "size"),
        ({"text": "x", "page": 0}, "page"),
        ({"text": "x", "filters": [{"script": {}}]}, "filters[0]"),
        ({"text": "x", "mode": "hybrid+rerank"}, "mode"),
    ]
    for kwargs, field in cases:
        with pytest.raises(SearchRequestError) as err:
            search._validate(
                kwargs.pop("text"),
                kwargs.get("mode", "hybrid"),
                kwargs.get("size", 10),
                kwargs.get("page", 1),
                kwargs.get("filters"),
            )
        assert err.value.field == field, kwargs  # type: ignore[attr-defined]


def test_pagination_beyond_max_depth_is_an_error() -> None:
    search = HybridSearch(_OfflineCluster(SERVERS["es9"]), "p", embedder=_Embedder(), max_depth=50)
    search._validate("x", "hybrid", 10, 5, None)  # ranks 41..50: fine
    with pytest.raises(PaginationDepthError) as err:
        search._validate("x", "hybrid", 10, 6, None)
    assert err.value.max_depth == 50 and err.value.field == "page"  # type: ignore[attr-defined]


def test_leg_bodies_and_server_body_use_the_profile() -> None:
    search = HybridSearch(
        _OfflineCluster(SERVERS["os3_neural"]), "p", embedder=_Embedder(), max_depth=20, num_candidates=40
    )
    bodies = search.leg_bodies("red tent", VECTOR, filters=FILTERS)
    assert bodies["lexical"]["size"] == 20
    assert bodies["vector"]["query"]["knn"]["embedding"]["k"] == 20
    assert bodies["vector"]["query"]["knn"]["embedding"]["filter"] == {"bool": {"filter": FILTERS}}
    body = search.server_body(
        "red tent",
        VECTOR,
        form="os_hybrid_query",
        fusion=FusionConfig(method="linear"),
        filters=FILTERS,
        size=5,
        page=2,
    )
    assert body["from"] == 5 and body["size"] == 5 and body["query"]["hybrid"]["pagination_depth"] == 20
    assert search._choose_form("hybrid", FusionConfig(method="linear"), "auto", explain=False) == "os_hybrid_query"
    assert search._choose_form("hybrid", FusionConfig(method="linear"), "auto", explain=True) is None
    assert search._choose_form("bm25", FusionConfig(method="linear"), "server", explain=False) is None
    es = HybridSearch(_OfflineCluster(SERVERS["es9"]), "p", embedder=_Embedder())
    with pytest.raises(SearchRequestError) as err:
        es._choose_form("hybrid", FusionConfig(), "server", explain=False)
    assert err.value.field == "strategy"  # type: ignore[attr-defined]


def test_explain_table() -> None:
    explanation = HitExplanation(
        mode="hybrid",
        strategy="client",
        fusion="rrf(k=60, w=1/1)",
        lexical=LegExplanation(raw_score=7.5, rank=1, normalized=1 / 61, weight=1.0, contribution=1 / 61),
        vector=LegExplanation(weight=1.0),
        fused_score=1 / 61,
    )
    response = SearchResponse(
        index="p",
        query="q",
        mode="hybrid",
        strategy="client",
        fusion=FusionConfig(),
        page=1,
        size=10,
        max_depth=100,
        candidates=1,
        hits=[
            SearchHit(id="d1", index="p", rank=1, score=1 / 61, source={"title": "Red tent"}, explanation=explanation)
        ],
    )
    table = format_hits(response)
    header, row = table.splitlines()[:2]
    assert header.split() == [
        "rank",
        "id",
        "score",
        "lex.raw",
        "lex.rank",
        "lex.norm",
        "vec.raw",
        "vec.rank",
        "vec.norm",
        "fused",
        "document",
    ]
    assert row.split() == ["1", "d1", "0.0164", "7.5000", "1", "0.0164", "-", "-", "-", "0.0164", "Red", "tent"]
    assert json.loads(response.model_dump_json())["hits"][0]["explanation"]["rerank_score"] is None
