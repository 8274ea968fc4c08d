"""``load``'s analyzers and the ``_meta`` search recommendation builders (pure, golden-tested).

Regenerate the golden files after an intended change with
``ESHYBRID_UPDATE_GOLDEN=1 pytest tests/unit/mappings/test_analysis_and_search_defaults.py`` and review the diff.
"""

from __future__ import annotations

import dataclasses

import pytest

from connector.cluster.capabilities import Capabilities
from connector.errors import ConfigError
from connector.quality.load import plain_index_body
from mappings.analysis import ENGLISH_FALLBACK, shop_analysis
from mappings.search_defaults import build_search_defaults, merge_search_defaults, search_defaults_of
from tests.unit._golden import GoldenFiles

check_golden = GoldenFiles(prefix="index_shop_").check
ES9 = Capabilities.from_version("elasticsearch", "9.5.4")
ES9_MINIMAL = dataclasses.replace(ES9, modules=frozenset({"x-pack-core", "transport-netty4"}))
OS3 = Capabilities.from_version("opensearch", "3.6.0")


def test_english_where_the_server_has_it_else_stopwords_only() -> None:
    assert shop_analysis(ES9, "english") == ("english", None)
    assert shop_analysis(OS3, "english") == ("english", None)
    assert shop_analysis(ES9, "standard") == ("standard", None)
    name, analysis = shop_analysis(ES9_MINIMAL, "english")
    assert name == ENGLISH_FALLBACK
    assert analysis == {"analyzer": {ENGLISH_FALLBACK: {"type": "standard", "stopwords": "_english_"}}}
    with pytest.raises(ConfigError):
        shop_analysis(ES9, "klingon")


@pytest.mark.parametrize(("name", "caps", "analyzer"), [
    ("es9_english", ES9, "english"), ("es9_minimal_english", ES9_MINIMAL, "english"),
    ("os3_standard", OS3, "standard"),
])  # fmt: skip
def test_shop_index_golden(name: str, caps: Capabilities, analyzer: str) -> None:
    body = plain_index_body(caps, analyzer=analyzer)
    check_golden(name, body)
    title = body["mappings"]["properties"]["title"]
    assert title["fields"]["keyword"]["type"] == "keyword"
    template = body["mappings"]["dynamic_templates"][0]["strings_as_text"]["mapping"]
    assert template["analyzer"] == title["analyzer"] == body["mappings"]["properties"]["text"]["analyzer"]


def test_search_defaults_merge_keeps_every_other_meta_key() -> None:
    defaults = build_search_defaults(
        fusion={"method": "rrf", "rank_constant": 60},
        lexical={"form": "combined_fields", "fields": {"title": 1.0}, "tie_breaker": None},
        judgments={"name": "esci", "date": "2026-12-01", "queries": 103},
        chosen_at="2026-12-02T02:00:00Z",
        evidence={"ndcg@10": 0.7},
    )
    existing = {"owner": "shop", "eshybrid": {"mapping_version": 1, "vector_fields": {"embedding": {"dims": 3}}}}
    merged = merge_search_defaults(existing, defaults)
    assert merged["owner"] == "shop" and merged["eshybrid"]["vector_fields"] == {"embedding": {"dims": 3}}
    assert search_defaults_of(merged) == defaults
    assert existing["eshybrid"].get("search_defaults") is None  # not mutated
    assert search_defaults_of({}) is None and search_defaults_of({"eshybrid": "x"}) is None
    with pytest.raises(ConfigError):
        merge_search_defaults({"eshybrid": "x"}, defaults)
    with pytest.raises(ConfigError):
        build_search_defaults(fusion={}, lexical={}, judgments={}, chosen_at="now")
