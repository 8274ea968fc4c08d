"""The gate's decision (pure) and the CLI surface of ``eshybrid train``."""

from __future__ import annotations

import dataclasses

import pytest

from connector.cli.main import build_parser
from connector.cli.train import _fit_settings
from connector.errors import ConfigError
from connector.train.fit import RERANKER_SETTINGS, FitSettings
from connector.train.gate import decide


def test_a_model_within_the_margin_is_accepted() -> None:
    decision = decide({"knn": 0.60, "hybrid": 0.70}, {"knn": 0.595, "hybrid": 0.72}, margin=0.01, queries=31)
    assert decision.accepted and not decision.forced
    assert decision.to_json()["diff"] == {"knn": -0.005, "hybrid": 0.02}


def test_a_worse_model_is_refused_with_the_figures() -> None:
    decision = decide({"knn": 0.60, "hybrid": 0.70}, {"knn": 0.40, "hybrid": 0.695}, margin=0.01)
    assert not decision.accepted
    assert decision.reason == "refused: the new model loses knn ndcg@10 0.6000 -> 0.4000 (-0.2000, margin 0.01)"
    forced = decide({"knn": 0.60}, {"knn": 0.40}, force=True)
    assert not forced.accepted and forced.forced and forced.reason.endswith("(switched anyway: --force)")
    with pytest.raises(ConfigError):
        decide({"knn": 0.6}, {"knn": 0.6}, margin=-1)


def test_fit_settings_are_bounded() -> None:
    with pytest.raises(ConfigError, match="batch_size"):
        FitSettings(batch_size=1)
    with pytest.raises(ConfigError, match="max_length"):
        FitSettings(max_length=4)


def test_train_commands_parse() -> None:
    parser = build_parser()
    args = parser.parse_args(
        ["train", "embedder", "--dataset", "d", "--index", "shop", "--out", "m", "--layers", "3", "--epochs", "1"]
    )
    assert (args.train_command, args.layers, args.epochs, args.max_positives) == ("embedder", 3, 1.0, 8)
    args = parser.parse_args(["train", "reranker", "--dataset", "d", "--index", "shop", "--out", "m"])
    assert (args.window, args.max_positives, args.max_length, args.learning_rate) == (50, 8, None, None)
    # Unset flags take the command's own defaults (the reranker's rate and length differ from the embedder's).
    assert _fit_settings(args, RERANKER_SETTINGS) == dataclasses.replace(RERANKER_SETTINGS, seed=13)
    args = parser.parse_args(
        ["train", "reranker", "--dataset", "d", "--index", "shop", "--out", "m", "--max-length", "64"]
    )
    assert _fit_settings(args, RERANKER_SETTINGS).max_length == 64
    args = parser.parse_args(
        ["train", "switch", "--dataset", "d", "--index", "shop", "--new-vector-field", "v2", "--new-embed-url", "u"]
    )
    assert (args.margin, args.force) == (0.01, False)
