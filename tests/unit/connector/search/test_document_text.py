"""One renderer: the text the reranker reads is the text the jobs embed (``connector.texts.build_text``).

The embedding path (strict) refuses what it cannot embed, and the job dead-letters the
document; the rerank path (lenient, ``document_text``) must read something for every hit.
For every document the embedding path accepts, both give the same text.
"""

from __future__ import annotations

from typing import Any

import pytest

from connector.errors import ConfigError
from connector.search.rerank import RerankConfig, apply_rerank, document_text
from connector.texts import TextPolicy, UnembeddableDocument, build_text

DOCS: dict[str, dict[str, Any]] = {
    "plain": {"title": "Kindle", "description": "e-reader"},
    "list": {"title": "Tent", "description": ["waterproof", "two person", "green"]},
    "nested": {"title": "Lamp", "product": {"brand": {"name": "Acme"}}, "description": "desk lamp"},
    "dotted_key": {"title": "Lamp", "product.brand.name": "Acme"},
    "missing_some": {"title": "Only a title"},
    "whitespace": {"title": "  Red shoe  ", "description": "\n leather \n"},
    "unicode": {"title": "Café crème", "description": ["naïve", "日本語"]},
    "empty_list": {"title": "Bare", "description": []},
    "braces": {"title": "a {b} c", "description": "}{"},
}

RENDERINGS: dict[str, tuple[tuple[str, ...], str | None]] = {
    "fields": (("title", "description", "product.brand.name"), None),
    "template": (("title", "description", "product.brand.name"), "{title} by {product.brand.name}\n{description}"),
    "template_literal_braces": (("title", "description"), "{{{title}}}: {description}"),
}


@pytest.mark.parametrize("doc", sorted(DOCS))
@pytest.mark.parametrize("rendering", sorted(RENDERINGS))
def test_embedding_and_rerank_paths_give_the_same_text(doc: str, rendering: str) -> None:
    fields, template = RENDERINGS[rendering]
    source = DOCS[doc]
    embedded = build_text(source, TextPolicy(fields=fields, template=template))
    reranked = document_text(source, fields=None if template else fields, template=template)
    assert reranked == embedded


def test_list_fields_join_with_spaces_on_both_paths() -> None:
    source = {"title": "Tent", "tags": ["a", "b"]}
    assert build_text(source, TextPolicy(fields=("title", "tags"))) == "Tent\na b"
    assert document_text(source, fields=("title", "tags")) == "Tent\na b"
    assert document_text(source, template="{tags}") == "a b"


@pytest.mark.parametrize(
    ("source", "code", "reranked"),
    [
        ({}, "missing_text", ""),
        ({"title": None, "description": None}, "missing_text", ""),
        ({"other": "not named"}, "missing_text", ""),
        ({"title": "   ", "description": ""}, "empty_text", ""),
        ({"title": "Shoe", "price": 19.99}, "wrong_type", "Shoe\n19.99"),
        ({"title": "Shoe", "price": 20}, "wrong_type", "Shoe\n20"),
        ({"title": "Shoe", "price": float("nan")}, "wrong_type", "Shoe"),
        ({"title": "Shoe", "description": ["a", None, 3]}, "wrong_type", "Shoe\na 3"),
    ],
)
def test_what_the_jobs_dead_letter_the_reranker_still_reads(source: dict[str, Any], code: str, reranked: str) -> None:
    fields = ("title", "description", "price")
    with pytest.raises(UnembeddableDocument) as err:
        build_text(source, TextPolicy(fields=fields))
    assert err.value.reason_code == code
    assert document_text(source, fields=fields) == reranked


def test_a_template_over_missing_fields_keeps_its_literal_text_for_the_reranker() -> None:
    template = "{title} by {brand}"
    with pytest.raises(UnembeddableDocument):
        build_text({}, TextPolicy(fields=("title", "brand"), template=template))
    assert document_text({"sku": "1"}, template=template) == "by"
    assert document_text({"title": "Kindle"}, template=template) == "Kindle by"


def test_rerank_text_is_cut_not_refused() -> None:
    source = {"title": "x" * 50}
    with pytest.raises(UnembeddableDocument):
        build_text(source, TextPolicy(fields=("title",), max_text_chars=10))
    assert document_text(source, fields=("title",), max_chars=10) == "x" * 10
    assert build_text(source, TextPolicy(fields=("title",), max_text_chars=10), strict=False) == "x" * 10


def test_hits_without_source_read_empty_text() -> None:
    assert document_text(None) == ""
    assert document_text({}) == ""
    assert document_text({"n": 3}) == ""  # no string field at the top: nothing to read


def test_default_text_is_every_top_level_string_field() -> None:
    source = {"title": "Kindle", "text": "e-reader", "tags": ["a", "b"], "meta": {"brand": "Amazon"}, "n": 3}
    assert document_text(source) == "Kindle\ne-reader"
    assert document_text(source, fields=("title", "meta.brand", "missing", "tags")) == "Kindle\nAmazon\na b"
    assert document_text(source, template="{title} by {meta.brand} ({missing})") == "Kindle by Amazon ()"
    assert document_text(source, fields=("title",), max_chars=3) == "Kin"


def test_a_malformed_template_is_a_config_error() -> None:
    with pytest.raises(ConfigError):
        document_text({"title": "x"}, template="{title")


class _Echo:
    """Scores a document by the length of the text it was given, and records the texts."""

    def __init__(self) -> None:
        self.texts: list[str] = []

    def score(self, query: str, documents: list[str]) -> list[float]:
        self.texts.extend(documents)
        return [float(len(d)) for d in documents]


def test_apply_rerank_sends_the_embedded_text() -> None:
    template = "{title}\n{bullets}"
    sources = [{"title": "Tent", "bullets": ["light", "green"]}, {"title": "Mat"}, None]
    hits = [{"_id": f"d{i}", "_source": s} for i, s in enumerate(sources)]
    echo = _Echo()
    config = RerankConfig(reranker=echo, template=template, cache_size=0)
    outcome = apply_rerank("q", hits, config)
    assert echo.texts == ["Tent\nlight green", "Mat", ""]
    assert echo.texts[0] == build_text(sources[0] or {}, TextPolicy(fields=("title", "bullets"), template=template))
    assert [h["_id"] for h in outcome.hits] == ["d0", "d1", "d2"]
