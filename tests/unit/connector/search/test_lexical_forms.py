"""The lexical leg's forms (golden JSON), and how a search resolves its lexical form and fusion.

Regenerate the golden files after an intended change with
``ESHYBRID_UPDATE_GOLDEN=1 pytest tests/unit/connector/search/test_lexical_forms.py`` and review the diff.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from connector.cluster.capabilities import Capabilities
from connector.errors import ConfigError, SearchRequestError
from connector.search import query_builder as qb
from connector.search._profile import profile_from_mapping
from connector.search.defaults import (
    FALLBACK_FORM,
    FALLBACK_TIE_BREAKER,
    fusion_from_meta,
    resolve_fusion,
    resolve_lexical,
)
from connector.search.models import DEFAULT_FUSION, FusionConfig
from tests.unit._golden import GoldenFiles

FIELDS = {"title": 2.0, "text": 1.0}
FILTERS = [{"term": {"brand.keyword": "Acme"}}]
ES9 = Capabilities.from_version("elasticsearch", "9.5.4")
OS2 = Capabilities.from_version("opensearch", "2.19.1")
OS3 = Capabilities.from_version("opensearch", "3.6.0")
check_golden = GoldenFiles(prefix="search_lexical_").check


@pytest.mark.parametrize("form", ["combined_fields", "best_fields", "most_fields", "cross_fields"])
def test_lexical_forms_golden(form: str) -> None:
    tie_breaker = 0.3 if form in ("best_fields", "cross_fields") else None
    check_golden(form, qb.lexical_query("red tent", fields=FIELDS, filters=FILTERS, form=form, tie_breaker=tie_breaker))  # type: ignore[arg-type]


@pytest.mark.parametrize("form", ["combined_fields", "best_fields", "most_fields", "cross_fields"])
def test_user_text_stays_the_query_of_the_clause_in_every_form(form: str) -> None:
    nasty = 'title:(secret) OR _exists_:password AND "unbalanced'
    body = qb.lexical_query(nasty, fields=FIELDS, form=form)  # type: ignore[arg-type]
    (clause,) = body["bool"]["must"][0].values()
    assert clause["query"] == nasty
    assert "query_string" not in json.dumps(body)


def test_combined_fields_refuses_boosts_below_one_and_tie_breakers_are_bounded() -> None:
    with pytest.raises(SearchRequestError) as e:
        qb.lexical_query("tent", fields={"title": 0.5, "text": 1.0}, form="combined_fields")
    assert e.value.field == "lexical_fields"
    with pytest.raises(SearchRequestError):
        qb.lexical_query("tent", fields=FIELDS, form="phrase")  # type: ignore[arg-type]
    with pytest.raises(SearchRequestError):
        qb.lexical_query("tent", fields=FIELDS, tie_breaker=1.5)


def test_capabilities_say_where_combined_fields_and_language_analyzers_exist() -> None:
    assert ES9.supports_combined_fields and OS3.supports_combined_fields
    assert not OS2.supports_combined_fields
    assert ES9.language_analyzers and OS2.language_analyzers  # modules unknown: a full distribution
    minimal = Capabilities.from_version("elasticsearch", "9.5.4")
    minimal = type(minimal)(**{**minimal.__dict__, "modules": frozenset({"x-pack-core", "transport-netty4"})})
    assert not minimal.language_analyzers


def mapping(*, meta: dict[str, Any] | None = None, text_analyzer: str = "english") -> dict[str, Any]:
    ours: dict[str, Any] = {"vector_fields": {"embedding": {"source_fields": ["title", "text"]}}}
    if meta is not None:
        ours["search_defaults"] = meta
    return {
        "_meta": {"eshybrid": ours},
        "properties": {
            "title": {"type": "text", "analyzer": "english"},
            "text": {"type": "text", "analyzer": text_analyzer},
            "brand": {"type": "text"},
            "embedding": {"type": "dense_vector"},
        },
    }


def test_defaults_combined_fields_where_usable_else_the_fallback() -> None:
    profile = profile_from_mapping(mapping(), index="shop")
    assert profile.lexical_fields == {"title": 3.0, "text": 1.0}
    assert resolve_lexical(ES9, profile, form=None, tie_breaker=None) == ("combined_fields", None)
    assert resolve_lexical(OS3, profile, form=None, tie_breaker=None) == ("combined_fields", None)
    assert resolve_lexical(OS2, profile, form=None, tie_breaker=None) == (FALLBACK_FORM, FALLBACK_TIE_BREAKER)
    mixed = profile_from_mapping(mapping(text_analyzer="standard"), index="shop")
    assert not mixed.one_search_analyzer
    assert resolve_lexical(ES9, mixed, form=None, tie_breaker=None)[0] == FALLBACK_FORM
    with pytest.raises(ConfigError):
        resolve_lexical(ES9, mixed, form="combined_fields", tie_breaker=None)
    assert resolve_lexical(ES9, profile, form="best_fields", tie_breaker=0.2) == ("best_fields", 0.2)


def test_the_index_recommendation_is_used_and_explicit_arguments_win() -> None:
    meta = {
        "fusion": {"method": "linear", "normalizer": "z_score", "lexical_weight": 0.3, "vector_weight": 0.7},
        "lexical": {"form": "most_fields", "fields": {"title": 3.0, "text": 1.0, "gone": 2.0}, "tie_breaker": None},
        "judgments": {"name": "mine", "date": "2026-12-01"},
    }
    profile = profile_from_mapping(mapping(meta=meta), index="shop")
    assert profile.lexical_fields == {"title": 3.0, "text": 1.0}  # a field the mapping lacks is dropped
    assert resolve_lexical(ES9, profile, form=None, tie_breaker=None) == ("most_fields", None)
    assert resolve_fusion(None, profile) == FusionConfig.model_validate(meta["fusion"])
    explicit = FusionConfig(method="rrf", rank_constant=10)
    assert resolve_fusion(explicit, profile) == explicit
    explicit_fields = profile_from_mapping(mapping(meta=meta), index="shop", lexical_fields={"text": 1.0})
    assert explicit_fields.lexical_fields == {"text": 1.0}
    assert resolve_fusion(None, profile_from_mapping(mapping(), index="shop")) == DEFAULT_FUSION


def test_a_malformed_recommendation_is_ignored() -> None:
    assert fusion_from_meta({"fusion": {"method": "median"}}) is None
    profile = profile_from_mapping(mapping(meta={"lexical": {"form": 7}}), index="shop")
    assert resolve_lexical(ES9, profile, form=None, tie_breaker=None) == ("combined_fields", None)


def test_undetected_capabilities_get_the_portable_form() -> None:
    profile = profile_from_mapping(mapping(), index="shop")
    assert resolve_lexical(None, profile, form=None, tie_breaker=None) == (FALLBACK_FORM, FALLBACK_TIE_BREAKER)
    assert resolve_lexical(None, profile, form="combined_fields", tie_breaker=None)[0] == "combined_fields"
