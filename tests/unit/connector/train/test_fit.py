"""Layer pruning of a student (the bundled all-MiniLM-L6-v2, local files only), the in-process embedder and a
tiny trained reranker as the serving code loads it."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import torch

from connector.errors import ConfigError
from connector.train.commands import default_base
from connector.train.fit import (
    DISTIL_EPOCHS,
    DISTIL_LEARNING_RATE,
    EMBEDDER_SETTINGS,
    STUDENT_SETTINGS,
    FitSettings,
    LocalEmbedder,
    distil_settings,
    fit_reranker,
    load_embedder,
    new_cross_encoder,
    prune_layers,
    save_cross_encoder,
)


def test_the_students_distillation_runs_at_its_own_rate_and_epochs_and_keeps_the_rest() -> None:
    settings = FitSettings(epochs=2.0, learning_rate=5e-5, max_length=64, seed=5, threads=1)
    distil = distil_settings(settings)
    assert (distil.learning_rate, distil.epochs) == (DISTIL_LEARNING_RATE, DISTIL_EPOCHS)
    assert (distil.max_length, distil.seed, distil.threads, distil.batch_size) == (64, 5, 1, settings.batch_size)
    assert (settings.learning_rate, settings.epochs) == (5e-5, 2.0)  # the fine-tune's own, untouched


def test_a_students_fine_tune_differs_from_the_embedders_by_its_rate_only() -> None:
    assert STUDENT_SETTINGS == replace(EMBEDDER_SETTINGS, learning_rate=1e-4)  # the seventh dev round's


def test_a_half_depth_student_keeps_every_other_layer_and_still_embeds() -> None:
    model = load_embedder(default_base(), max_length=32)
    assert prune_layers(model, 3) == [0, 2, 4]
    assert model[0].auto_model.config.num_hidden_layers == 3
    assert len(model[0].auto_model.encoder.layer) == 3
    vector = LocalEmbedder(model).embed_query("usb c cable")
    assert len(vector) == 384
    assert abs(sum(x * x for x in vector) - 1.0) < 1e-4
    with pytest.raises(ConfigError, match="--layers"):
        prune_layers(model, 3)  # 3 of 3: nothing would be pruned


def test_a_trained_reranker_is_served_as_it_was_trained(tmp_path: Path) -> None:
    """A few seeded steps of the cross-encoder's MNRL, saved; the serving code scores it as the trainer's model does
    (one logit, higher = better; the same pairs, the same numbers)."""
    import rerank

    triplets = [
        ("usb c cable", "USB-C charging cable, 2 m", "Ceramic coffee mug"),
        ("coffee mug", "Ceramic coffee mug, 350 ml", "USB-C charging cable, 2 m"),
        ("running shoes", "Men's running shoes, breathable mesh", "Stainless steel water bottle"),
        ("water bottle", "Stainless steel water bottle, 1 l", "Men's running shoes, breathable mesh"),
    ]
    settings = FitSettings(epochs=1.0, batch_size=2, learning_rate=1e-4, max_length=32, seed=13, threads=1)
    model = new_cross_encoder(default_base(), max_length=32, seed=13)
    result = fit_reranker(model, triplets, settings=settings, in_batch_negatives=1)
    assert result.steps == 2 and result.examples == 4
    save_cross_encoder(model, tmp_path / "reranker", max_length=32)
    served = rerank.load_in_process(str(tmp_path / "reranker"), device="cpu", torch_threads=1, max_doc_tokens=0)
    documents = [t[1] for t in triplets]
    trained = model.predict([("usb c cable", d) for d in documents], activation_fn=torch.nn.Identity())
    assert served.score("usb c cable", documents) == pytest.approx([float(x) for x in trained], abs=1e-4)
    assert served.info()["score"] == "logit" and served.max_length == 32
