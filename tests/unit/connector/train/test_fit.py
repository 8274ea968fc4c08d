"""Layer pruning of a student (the bundled all-MiniLM-L6-v2, local files only) and the in-process embedder."""

from __future__ import annotations

import pytest

from connector.errors import ConfigError
from connector.train.commands import default_base
from connector.train.fit import LocalEmbedder, load_embedder, prune_layers


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
