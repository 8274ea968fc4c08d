"""Pure prompt, budget and batching helpers of the rerank service (no torch)."""

from __future__ import annotations

import pytest

from rerank._text import (
    cut_segments,
    cut_to_tokens,
    length_sorted_batches,
    pair_budget,
    render_prompt,
    split_template,
    token_owners,
)
from rerank.errors import RerankConfigError


def test_split_template_fills_instruction_and_splits_slots() -> None:
    parts = split_template("<I>{instruction}</I> Q: {query} D: {document}!", instruction="be strict")
    assert parts.pieces == ("<I>be strict</I> Q: ", "query", " D: ", "document", "!")
    assert parts.slots == ("literal", "query", "literal", "document", "literal")


def test_split_template_document_first() -> None:
    parts = split_template("{document}\n{query}", instruction="")
    assert parts.slots == ("document", "literal", "query")


@pytest.mark.parametrize("template", ["{query} only", "{document} only", "{query} {query} {document}"])
def test_split_template_needs_each_slot_once(template: str) -> None:
    with pytest.raises(RerankConfigError):
        split_template(template, instruction="")


def test_render_prompt_spans_and_no_double_substitution() -> None:
    parts = split_template("Q: {query}\nD: {document}\nA:", instruction="")
    text, query_span, document_span = render_prompt(parts, query="red {document}", document="shoes {query}")
    assert text == "Q: red {document}\nD: shoes {query}\nA:"
    assert text[slice(*query_span)] == "red {document}"
    assert text[slice(*document_span)] == "shoes {query}"


def test_pair_budget_keeps_everything_that_fits() -> None:
    assert pair_budget(n_fixed=3, n_query=5, n_document=50, max_length=64, max_query_share=0.5) == (5, 50)


def test_pair_budget_cuts_the_document_first() -> None:
    assert pair_budget(n_fixed=3, n_query=5, n_document=500, max_length=64, max_query_share=0.5) == (5, 56)


def test_pair_budget_cuts_a_long_query_to_its_share() -> None:
    # 61 tokens are left after the fixed ones; the query may take int(61 * 0.5) = 30 of them.
    assert pair_budget(n_fixed=3, n_query=200, n_document=500, max_length=64, max_query_share=0.5) == (30, 31)
    # A long query beside a short document keeps what fits.
    assert pair_budget(n_fixed=3, n_query=200, n_document=4, max_length=64, max_query_share=0.5) == (30, 4)


def test_pair_budget_refuses_a_template_without_room() -> None:
    with pytest.raises(RerankConfigError):
        pair_budget(n_fixed=63, n_query=1, n_document=1, max_length=64, max_query_share=0.5)


def test_token_owners_and_cut_segments() -> None:
    # "Q: ab\nD: cdef\nA:" -> tokens: "Q:", " ab", "\nD:", " cd", "ef", "\nA:" plus a special at 0.
    offsets = [(0, 0), (0, 2), (2, 5), (5, 8), (8, 11), (11, 13), (13, 16)]
    special = [1, 0, 0, 0, 0, 0, 0]
    owners = token_owners(offsets, special, query_span=(3, 5), document_span=(9, 13))
    assert owners == ["fixed", "fixed", "query", "fixed", "document", "document", "fixed"]
    ids = [100, 1, 2, 3, 4, 5, 6]
    assert cut_segments(ids, owners, keep_query=1, keep_document=1) == [100, 1, 2, 3, 4, 6]
    assert cut_segments(ids, owners, keep_query=0, keep_document=0) == [100, 1, 3, 6]


def test_length_sorted_batches_longest_first_every_index_once() -> None:
    batches = length_sorted_batches([3, 9, 1, 7, 5], 2)
    assert batches == [[1, 3], [4, 0], [2]]
    assert sorted(i for batch in batches for i in batch) == [0, 1, 2, 3, 4]
    assert length_sorted_batches([], 4) == []


def test_cut_to_tokens_ends_where_the_last_kept_token_ends() -> None:
    text = "red running shoes, size 42"
    offsets = [(0, 3), (4, 11), (12, 17), (17, 18), (19, 23), (24, 26)]
    assert cut_to_tokens(text, offsets, 3) == "red running shoes"
    assert cut_to_tokens(text, offsets, 6) == text
    assert cut_to_tokens(text, offsets, 100) == text
    with pytest.raises(RerankConfigError):
        cut_to_tokens(text, offsets, 0)
