"""The CLI is where reranking is composed: --rerank-model gets a loader from the rerank package (lazily)."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from connector.cli.rerank import add_rerank_arguments, load_in_process, rerank_config_from_args
from connector.search.rerank import apply_rerank


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_rerank_arguments(parser)
    return parser.parse_args(argv)


def test_rerank_model_gets_the_rerank_packages_loader(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ESHYBRID_SEARCH_RERANK_URL", raising=False)
    config = rerank_config_from_args(_parse(["--rerank-model", "/models/ce"]))
    assert config is not None and config.model == "/models/ce" and config.loader is load_in_process
    url_config = rerank_config_from_args(_parse(["--rerank-url", "http://h:1/rerank"]))
    assert url_config is not None and url_config.model is None


def test_a_checkpoint_that_does_not_load_falls_back_with_the_reason(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    config = rerank_config_from_args(_parse(["--rerank-model", str(tmp_path), "--rerank-fields", "t"]))
    assert config is not None
    outcome = apply_rerank("q", [{"_id": "a", "_source": {"t": "x"}}], config)
    assert outcome.fallback
    assert f"cannot load reranker {str(tmp_path)!r}" in (outcome.reason or "")
