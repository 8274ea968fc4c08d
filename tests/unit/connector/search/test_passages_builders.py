"""Passage (nested kNN) builders and the passages mapping: golden JSON per engine.

Regenerate after an intended change with
``ESHYBRID_UPDATE_GOLDEN=1 pytest tests/unit/connector/search/test_passages_builders.py`` and review the diff.
"""

from __future__ import annotations

import pytest

from connector.cluster.capabilities import Capabilities
from connector.errors import ConfigError, SearchRequestError
from connector.search.models import FusionConfig
from connector.search.passages import best_passage, passage_knn_leg_body, passage_server_body
from connector.search.query_builder import lexical_query
from mappings import VectorField
from mappings.passages import build_add_passages_field_body
from tests.unit._golden import GoldenFiles

check_golden = GoldenFiles(prefix="passages_").check
SERVERS = {
    "es8": Capabilities.from_version("elasticsearch", "8.19.9", license="basic"),
    "es9": Capabilities.from_version("elasticsearch", "9.5.4", license="basic"),
    "os2": Capabilities.from_version("opensearch", "2.19.1"),
    "os3": Capabilities.from_version("opensearch", "3.6.0"),
}
FILTERS = [{"term": {"brand": "acme"}}]
VECTOR = [0.1, 0.2, 0.3]


@pytest.mark.parametrize("name", sorted(SERVERS))
def test_knn_leg_golden(name: str) -> None:
    caps = SERVERS[name]
    body = passage_knn_leg_body(
        VECTOR, knn_shape=caps.knn_leg_shape, path="passages", k=10, num_candidates=50, filters=FILTERS
    )
    check_golden(f"knn_leg_{name}", body)


def test_knn_section_shape_golden() -> None:
    body = passage_knn_leg_body(VECTOR, knn_shape="es_knn_section", path="passages", k=5, num_candidates=3)
    check_golden("knn_leg_es_section", body)
    with pytest.raises(SearchRequestError):
        passage_knn_leg_body(VECTOR, knn_shape="solr", path="passages", k=5, num_candidates=3)


@pytest.mark.parametrize("form", ["os_hybrid_query", "es_query_knn", "es_rrf_retriever", "es_linear_retriever"])
def test_server_forms_golden(form: str) -> None:
    query = lexical_query("red mug", fields={"title": 2.0, "description": 1.0}, filters=FILTERS)
    fusion = FusionConfig(method="linear", normalizer="min_max") if "linear" in form else FusionConfig()
    body = passage_server_body(
        form,
        query,
        VECTOR,
        path="passages",
        fusion=fusion,
        depth=20,
        num_candidates=40,
        filters=FILTERS,
        size=10,
        from_=0,
        source=False,
    )
    check_golden(f"server_{form}", body)


@pytest.mark.parametrize("name", sorted(SERVERS))
def test_mapping_golden(name: str) -> None:
    field = VectorField(
        "passages",
        dims=384,
        model_id="all-MiniLM-L6-v2",
        source_fields=("title", "description"),
        template="{title}\n{description}",
    )
    existing = {"properties": {"title": {"type": "text"}}, "_meta": {"eshybrid": {"vector_fields": {}}}}
    body = build_add_passages_field_body(
        SERVERS[name],
        existing_mapping=existing,
        field=field,
        cut={"strategy": "sentence", "max_tokens": 128, "overlap_sentences": 1, "max_passages": 16},
    )
    check_golden(f"mapping_{name}", body)
    assert body["_meta"]["eshybrid"]["vector_fields"] == {}  # other keys kept


def test_mapping_refuses_a_taken_name() -> None:
    field = VectorField("passages", dims=3, model_id="m")
    with pytest.raises(ConfigError, match="not a passages field"):
        build_add_passages_field_body(
            SERVERS["es9"], existing_mapping={"properties": {"passages": {"type": "text"}}}, field=field
        )


def test_best_passage_reads_inner_hits() -> None:
    hit = {
        "_id": "1",
        "inner_hits": {
            "passages": {
                "hits": {
                    "hits": [
                        {
                            "_nested": {"field": "passages", "offset": 3},
                            "_score": 0.91,
                            "_source": {"start": 700, "end": 950, "text": "Mug\nfits a cup holder."},
                        }
                    ]
                }
            }
        },
    }
    match = best_passage(hit, "passages")
    assert match is not None
    assert (match.start, match.end, match.offset, match.score) == (700, 950, 3, 0.91)
    assert best_passage({"_id": "2"}, "passages") is None
    wrapped = {"inner_hits": {"p": {"hits": {"hits": [{"_score": 1.0, "_source": {"p": {"start": 1, "end": 2}}}]}}}}
    assert best_passage(wrapped, "p") is not None and best_passage(wrapped, "p").start == 1  # type: ignore[union-attr]


def test_explain_table_names_the_passage() -> None:
    from connector.search.explain import format_hits
    from connector.search.models import HitExplanation, PassageMatch, SearchHit, SearchResponse

    explanation = HitExplanation(
        mode="knn", strategy="single", fused_score=0.9, passage=PassageMatch(start=700, end=950, offset=3, score=0.9)
    )
    response = SearchResponse(
        index="p",
        query="q",
        mode="knn",
        strategy="single",
        page=1,
        size=1,
        max_depth=10,
        hits=[SearchHit(id="long", index="p", rank=1, score=0.9, explanation=explanation)],
    )
    table = format_hits(response)
    assert "passage" in table.splitlines()[0] and "#3 [700:950]" in table
