"""Cutting a long document text into passages that fit the model's token window (pure functions).

The embedding model reads ``max_length`` tokens (256 for all-MiniLM-L6-v2) and silently drops the
rest, so the tail of a long product text never reaches a whole-document vector. A passage-mode
job cuts the rendered text (:func:`connector.texts.build_text`) into passages, embeds each, and
writes them as a nested ``passages`` array (vector + character offsets into the text); search
scores a document by its best passage.

How a text is cut (:func:`cut_passages`):

1. Sentences: split after ``. ! ?`` followed by white space, and at line breaks (product bullets).
2. Token counts come from the model's own tokenizer (the embedding service's ``POST /v1/tokenize``
   returns each token's character span): the tokens of a sentence are the tokens whose span lies
   inside it, so counting needs one tokenizer call per document, not one per candidate passage.
3. A sentence longer than the budget is cut at token boundaries into windows of the budget.
4. Sentences are packed greedily into passages of at most ``budget`` tokens; the next passage starts
   ``overlap_sentences`` sentences before the previous one ended (always moving forward).
5. At most ``max_passages`` passages per document (the rest of the text is not embedded, and the
   job says how many documents were cut short).

The passage text sent to the model is ``prefix + "\\n" + span`` when a prefix template is set (for
instance ``{title}``, so every passage says what product it is about), else the span; a text that fits
in one passage is that passage as it is (the text a whole-document vector reads, no prefix). The budget is
the model window less the special tokens, the service's document prefix and the prefix's tokens;
the job then counts every assembled passage with the service once more and cuts again with a
smaller budget where one still does not fit (:func:`over_budget`), so no passage is ever truncated.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from connector.errors import ConfigError, JobError
from connector.texts import TextPolicy, build_text, template_fields

__all__ = [
    "Passage",
    "PassagePolicy",
    "PassageStep",
    "Tokenizer",
    "count_tokens_in",
    "cut_passages",
    "over_budget",
    "passages_value",
    "sentence_spans",
]

Span = tuple[int, int]

# A sentence ends after . ! ? (and closing quotes/brackets) followed by white space, or at a line break.
_SENTENCE_END = re.compile(r"(?<=[.!?])[\"')\]]*\s+|\n+")


@dataclass(frozen=True, kw_only=True)
class PassagePolicy:
    """How passages are cut (recorded in the index ``_meta`` beside the field).

    Attributes:
        max_tokens: content tokens per passage (prefix and special tokens excluded); ``None``: as many
            as the model's window leaves.
        overlap_sentences: sentences repeated at the start of the next passage (0: none).
        max_passages: passages per document at most (the text after them is not embedded).
        prefix_template: optional ``{field}`` template (e.g. ``{title}``) put before every passage.
    """

    max_tokens: int | None = None
    overlap_sentences: int = 1
    max_passages: int = 16
    prefix_template: str | None = None

    def __post_init__(self) -> None:
        if self.max_tokens is not None and self.max_tokens < 8:
            raise ConfigError(f"passage max_tokens must be >= 8, got {self.max_tokens}", field="passage_tokens")
        if not 0 <= self.overlap_sentences <= 8:
            raise ConfigError(
                f"passage overlap must be within 0..8 sentences, got {self.overlap_sentences}", field="passage_overlap"
            )
        if not 1 <= self.max_passages <= 256:
            raise ConfigError(
                f"max passages per document must be within 1..256, got {self.max_passages}", field="max_passages"
            )

    def budget(self, *, max_length: int, reserved_tokens: int) -> int:
        """Content tokens per passage: the window less ``reserved_tokens`` (specials, prefixes), capped."""
        room = max_length - reserved_tokens
        if room < 8:
            raise ConfigError(
                f"the model reads {max_length} tokens and the prefix and special tokens take {reserved_tokens}; "
                "shorten the passage prefix template",
                field="passage_prefix",
            )
        return room if self.max_tokens is None else min(room, self.max_tokens)

    def identity(self, model_id: str) -> str:
        """What the per-document bookkeeping records as the model of a passages array: the model and the cut."""
        prefix = self.prefix_template or ""
        return (
            f"{model_id}#passages:{self.max_tokens or 'window'}/{self.overlap_sentences}/{self.max_passages}/{prefix}"
        )

    def meta(self, *, max_length: int) -> dict[str, Any]:
        """What ``_meta`` records about how the passages of a field were cut."""
        return {
            "strategy": "sentence",
            "max_tokens": self.max_tokens,
            "model_max_length": max_length,
            "overlap_sentences": self.overlap_sentences,
            "max_passages": self.max_passages,
            "prefix_template": self.prefix_template,
            "tokenizer": "the embedding service's (POST /v1/tokenize)",
        }


@dataclass(frozen=True)
class Passage:
    """One passage: ``text[start:end]`` of the document text, and the text sent to the model."""

    start: int
    end: int
    text: str


def sentence_spans(text: str) -> list[Span]:
    """Character spans of the sentences of ``text`` (white space around them excluded)."""
    spans: list[Span] = []
    position = 0
    for match in _SENTENCE_END.finditer(text):
        spans.extend(_stripped(text, position, match.start()))
        position = match.end()
    spans.extend(_stripped(text, position, len(text)))
    return spans


def _stripped(text: str, start: int, end: int) -> list[Span]:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return [(start, end)] if end > start else []


def count_tokens_in(token_spans: Sequence[Span], start: int, end: int) -> int:
    """How many of ``token_spans`` (sorted by start) lie inside ``[start, end)``."""
    i, j = _tokens_inside([s for s, _ in token_spans], start, end)
    return j - i


def _tokens_inside(starts: Sequence[int], start: int, end: int) -> Span:
    """The index range ``[i, j)`` of the tokens that start inside ``[start, end)``."""
    i = bisect.bisect_left(starts, start)
    j = bisect.bisect_left(starts, end)
    return i, j


def _units(text: str, token_spans: Sequence[Span], budget: int) -> list[tuple[int, int, int]]:
    """Sentences as ``(start, end, tokens)``; a sentence over ``budget`` becomes windows of ``budget`` tokens."""
    starts = [s for s, _ in token_spans]
    units: list[tuple[int, int, int]] = []
    for s, e in sentence_spans(text):
        i, j = _tokens_inside(starts, s, e)
        if j - i <= budget:
            units.append((s, e, j - i))
            continue
        for k in range(i, j, budget):
            last = min(k + budget, j) - 1
            units.append((token_spans[k][0], token_spans[last][1], last - k + 1))
    return units


def cut_passages(
    text: str,
    token_spans: Sequence[Span],
    *,
    budget: int,
    overlap_sentences: int = 1,
    max_passages: int = 16,
    prefix: str = "",
) -> list[Passage]:
    """Cut ``text`` into passages of at most ``budget`` tokens (see the module docstring).

    Args:
        text: the document text (what :func:`connector.texts.build_text` rendered).
        token_spans: character spans of the text's tokens by the model's tokenizer, special tokens
            excluded, sorted.
        budget: content tokens per passage.
        overlap_sentences: sentences shared by consecutive passages.
        max_passages: passages at most.
        prefix: text put before every passage (``prefix + "\\n" + span``), e.g. the title.

    Returns:
        The passages in text order; one passage holding the whole text when it fits.
    """
    if budget < 1:
        raise ValueError(f"budget must be >= 1, got {budget}")
    units = _units(text, token_spans, budget)
    passages: list[Passage] = []
    first = 0
    while first < len(units) and len(passages) < max_passages:
        tokens, last = 0, first
        while last < len(units) and tokens + units[last][2] <= budget:
            tokens += units[last][2]
            last += 1
        last = max(last, first + 1)  # a unit always fits (windows are cut to the budget)
        start, end = units[first][0], units[last - 1][1]
        body = text[start:end]
        if first == 0 and last >= len(units):
            # The whole text fits: it is its own passage, the same text a whole-document vector reads.
            return [Passage(start, end, body)]
        passages.append(Passage(start, end, f"{prefix}\n{body}" if prefix else body))
        if last >= len(units):
            break
        first = max(first + 1, last - overlap_sentences)
    return passages


def over_budget(token_counts: Sequence[int], *, max_length: int) -> list[int]:
    """Positions of passages whose full token count (as the service counted it) exceeds ``max_length``."""
    return [i for i, n in enumerate(token_counts) if n > max_length]


class Tokenizer(Protocol):
    """What cutting needs from the embedding service (:meth:`EmbeddingClient.tokenize`)."""

    def tokenize(self, texts: Sequence[str]) -> list[tuple[int, list[Span]]]: ...


@dataclass
class PassageStep:
    """Cuts the texts of a page into passages with the service's tokenizer (the job's passages step).

    Attributes:
        policy: how to cut.
        tokenizer: the embedding service client.
        max_length: the model's window (``/info``'s ``max_length``).
        fields: the job's text fields (the prefix template may only name these: they are the fields read).
    """

    policy: PassagePolicy
    tokenizer: Tokenizer
    max_length: int
    fields: tuple[str, ...] = ()
    _prefix_policy: TextPolicy | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        template = self.policy.prefix_template
        if template is not None:
            self._prefix_policy = TextPolicy(fields=tuple(template_fields(template)), template=template)
            unknown = [f for f in self._prefix_policy.fields if f not in self.fields]
            if self.fields and unknown:
                raise ConfigError(
                    f"the passage prefix template names {unknown}, which are not among the text fields "
                    f"{list(self.fields)}; add them to --fields",
                    field="passage_prefix",
                )

    def prefix(self, source: Mapping[str, Any]) -> str:
        """The prefix of every passage of this document ("" without a template)."""
        if self._prefix_policy is None:
            return ""
        return build_text(source, self._prefix_policy, strict=False).replace("\n", " ")[:500]

    def cut(self, texts: Sequence[str], prefixes: Sequence[str]) -> list[list[Passage]]:
        """Passages of each text; every one counted again by the service and re-cut until it fits."""
        token_rows = self.tokenizer.tokenize(list(texts))
        heads = sorted(set(prefixes))
        # What the window loses to each prefix: specials + the service's document prefix + ours + the line break.
        reserved = dict(zip(heads, (n for n, _ in self.tokenizer.tokenize([h + "\n" if h else "" for h in heads]))))
        out: list[list[Passage]] = []
        for text, prefix, (_, spans) in zip(texts, prefixes, token_rows):
            budget = self.policy.budget(max_length=self.max_length, reserved_tokens=reserved[prefix])
            out.append(self._cut_one(text, spans, budget, prefix))
        self._fit(texts, prefixes, token_rows, out)
        return out

    def _cut_one(self, text: str, spans: Sequence[Span], budget: int, prefix: str) -> list[Passage]:
        return cut_passages(
            text,
            spans,
            budget=budget,
            overlap_sentences=self.policy.overlap_sentences,
            max_passages=self.policy.max_passages,
            prefix=prefix,
        )

    def _fit(
        self,
        texts: Sequence[str],
        prefixes: Sequence[str],
        token_rows: Sequence[tuple[int, list[Span]]],
        cuts: list[list[Passage]],
    ) -> None:
        """Count the assembled passages; re-cut a text with a smaller budget while one is over the window."""
        for _ in range(4):
            flat = [(i, p) for i, passages in enumerate(cuts) for p in passages]
            counts = [n for n, _ in self.tokenizer.tokenize([p.text for _, p in flat])]
            over: dict[int, int] = {}
            for (i, _), n in zip(flat, counts):
                if n > self.max_length:
                    over[i] = max(over.get(i, 0), n - self.max_length)
            if not over:
                return
            for i, excess in over.items():
                longest = max(count_tokens_in(token_rows[i][1], p.start, p.end) for p in cuts[i])
                cuts[i] = self._cut_one(texts[i], token_rows[i][1], max(1, longest - excess), prefixes[i])
        raise JobError("passages still exceed the model's window after re-cutting; report this text")


def passages_value(passages: Sequence[Passage], vectors: Sequence[Sequence[float]]) -> list[dict[str, Any]]:
    """The nested ``passages`` array written for a document (replaces the old array whole)."""
    return [
        {"vector": list(vector), "start": p.start, "end": p.end, "text": p.text}
        for p, vector in zip(passages, vectors, strict=True)
    ]
