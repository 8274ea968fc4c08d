"""The causal-LM query rewriter on a tiny seeded model (the machinery, not the quality)."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")

from connector.search.rewrite import TimedRewriter  # noqa: E402
from rerank.errors import ModelLoadError, RerankConfigError  # noqa: E402
from rerank.rewriter import LMQueryRewriter, load_rewriter  # noqa: E402


def test_rewriter_generates_deterministically_and_fits_the_search_hook(llm_reranker_path: Path) -> None:
    rewriter = load_rewriter(str(llm_reranker_path), max_new_tokens=6, device="cpu")
    first = rewriter.rewrite("adidsa gym bag")
    assert isinstance(first, str) and "\n" not in first
    assert rewriter.rewrite("adidsa gym bag") == first  # greedy: the same answer every time
    outcome = TimedRewriter(rewriter, timeout_s=30).apply("adidsa gym bag")
    # a random tiny model may answer nothing usable: then the hook falls back, flagged
    assert outcome.text == (" ".join(first.split()) if first.strip() else "adidsa gym bag")
    assert outcome.fallback == (not first.strip())


def test_rewriter_template_and_bounds_are_checked(llm_reranker_path: Path) -> None:
    rewriter = load_rewriter(str(llm_reranker_path), device="cpu")
    with pytest.raises(RerankConfigError):
        LMQueryRewriter(model=rewriter.model, tokenizer=rewriter.tokenizer, template="no placeholder")
    with pytest.raises(RerankConfigError):
        LMQueryRewriter(model=rewriter.model, tokenizer=rewriter.tokenizer, max_new_tokens=0)


def test_missing_checkpoint_is_a_load_error(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError):
        load_rewriter(str(tmp_path / "nothing"), device="cpu")
