"""Pure helpers for prompts, token budgets and length-sorted batching (no torch).

Kept apart from the models so the truncation rules can be unit-tested with
plain lists.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from rerank.errors import RerankConfigError

__all__ = [
    "PromptParts",
    "Segment",
    "split_template",
    "render_prompt",
    "pair_budget",
    "cut_segments",
    "token_owners",
    "length_sorted_batches",
    "cut_to_tokens",
]

Segment = Literal["fixed", "query", "document"]


@dataclass(frozen=True)
class PromptParts:
    """A template split around its placeholders: ``pieces[i]`` is a literal or a slot name."""

    pieces: tuple[str, ...]
    slots: tuple[Literal["literal", "query", "document"], ...]


def split_template(template: str, *, instruction: str) -> PromptParts:
    """Split ``template`` at ``{query}`` and ``{document}``, with ``{instruction}`` filled in.

    The split is done once, so a document that happens to contain ``{query}``
    is never substituted again.

    Raises:
        RerankConfigError: a placeholder is missing or appears twice.
    """
    text = template.replace("{instruction}", instruction)
    for slot in ("{query}", "{document}"):
        if text.count(slot) != 1:
            raise RerankConfigError(f"the template must contain {slot} exactly once", placeholder=slot)
    pieces: list[str] = []
    slots: list[Literal["literal", "query", "document"]] = []
    rest = text
    while rest:
        q_at, d_at = rest.find("{query}"), rest.find("{document}")
        found = [(at, name) for at, name in ((q_at, "query"), (d_at, "document")) if at >= 0]
        if not found:
            pieces.append(rest)
            slots.append("literal")
            break
        at, name = min(found)
        if at:
            pieces.append(rest[:at])
            slots.append("literal")
        pieces.append(name)
        slots.append("query" if name == "query" else "document")
        rest = rest[at + len(name) + 2 :]
    return PromptParts(tuple(pieces), tuple(slots))


def render_prompt(parts: PromptParts, *, query: str, document: str) -> tuple[str, tuple[int, int], tuple[int, int]]:
    """Fill a split template.

    Returns:
        ``(text, query_span, document_span)`` with character spans ``[start, end)``.
    """
    chunks: list[str] = []
    spans = {"query": (0, 0), "document": (0, 0)}
    at = 0
    for piece, slot in zip(parts.pieces, parts.slots, strict=True):
        value = piece if slot == "literal" else (query if slot == "query" else document)
        if slot != "literal":
            spans[slot] = (at, at + len(value))
        chunks.append(value)
        at += len(value)
    return "".join(chunks), spans["query"], spans["document"]


def pair_budget(
    *, n_fixed: int, n_query: int, n_document: int, max_length: int, max_query_share: float
) -> tuple[int, int]:
    """How many query and document tokens a pair keeps.

    Everything is kept when it fits.  Otherwise the query is kept whole when it
    fits in its share (``max_query_share`` of the tokens left after the fixed
    ones) and cut to that share when it does not; the document gets the rest,
    so it always keeps at least the other share.

    Returns:
        ``(query_tokens_kept, document_tokens_kept)``.

    Raises:
        RerankConfigError: the fixed tokens (template, special tokens) leave no room.
    """
    available = max_length - n_fixed
    if available < 2:
        raise RerankConfigError(
            f"the template and special tokens take {n_fixed} of {max_length} tokens; "
            "raise max_length or shorten the template",
            max_length=max_length,
            fixed_tokens=n_fixed,
        )
    if n_query + n_document <= available:
        return n_query, n_document
    query_cap = max(1, int(available * max_query_share))
    keep_query = min(n_query, query_cap)
    return keep_query, min(n_document, available - keep_query)


def cut_segments(ids: Sequence[int], owners: Sequence[Segment], *, keep_query: int, keep_document: int) -> list[int]:
    """Keep fixed tokens, the first ``keep_query`` query tokens and the first ``keep_document`` document tokens."""
    kept: list[int] = []
    left = {"query": keep_query, "document": keep_document}
    for token, owner in zip(ids, owners, strict=True):
        if owner == "fixed":
            kept.append(token)
        elif left[owner] > 0:
            kept.append(token)
            left[owner] -= 1
    return kept


def token_owners(
    offsets: Sequence[tuple[int, int]],
    special: Sequence[int],
    *,
    query_span: tuple[int, int],
    document_span: tuple[int, int],
) -> list[Segment]:
    """Which segment each token belongs to; a token overlapping a span belongs to it."""
    owners: list[Segment] = []
    for (start, end), is_special in zip(offsets, special, strict=True):
        if is_special or end <= start:
            owners.append("fixed")
        elif start < document_span[1] and end > document_span[0]:
            owners.append("document")
        elif start < query_span[1] and end > query_span[0]:
            owners.append("query")
        else:
            owners.append("fixed")
    return owners


def length_sorted_batches(lengths: Sequence[int], batch_size: int) -> list[list[int]]:
    """Indices grouped into batches of similar length, longest first.

    Less padding for the same output; longest first makes an out-of-memory
    error show on the first batch rather than the last.
    """
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    return [order[at : at + batch_size] for at in range(0, len(order), batch_size)]


def cut_to_tokens(text: str, offsets: Sequence[tuple[int, int]], budget: int) -> str:
    """``text`` cut after its first ``budget`` tokens (``offsets``: the tokenizer's character spans, no specials).

    A text of at most ``budget`` tokens comes back whole; else it ends where token ``budget`` ends, so the pair
    tokenized again holds at most ``budget`` document tokens (never a cut inside a token).
    """
    if budget < 1:
        raise RerankConfigError(f"a document token budget must be >= 1, not {budget}", field="max_doc_tokens")
    if len(offsets) <= budget:
        return text
    return text[: offsets[budget - 1][1]]
