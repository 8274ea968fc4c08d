"""Models that learn the shop: fine-tune the embedder and a cross-encoder on its judgments, switch with a gate.

``eshybrid train embedder`` / ``train reranker`` (:mod:`connector.train.commands`), the pure example builders
(:mod:`connector.train.examples`), the model card (:mod:`connector.train.card`) and the gated model switch
(:mod:`connector.train.gate`). torch and sentence-transformers (the ``train`` extra) are imported only when a
model is trained or scored.
"""

from __future__ import annotations

from connector.train.card import CARD_FILE, read_card, render_card, write_card
from connector.train.commands import TrainReport, default_base, train_embedder, train_reranker
from connector.train.data import QuerySplit, corpus_texts, interleave, mine_candidates, split_for_training
from connector.train.examples import (
    TripletExample,
    embedder_triplets,
    shuffled_qrels,
)
from connector.train.fit import FitSettings

__all__ = [
    "CARD_FILE",
    "FitSettings",
    "QuerySplit",
    "TrainReport",
    "TripletExample",
    "corpus_texts",
    "default_base",
    "embedder_triplets",
    "interleave",
    "mine_candidates",
    "read_card",
    "render_card",
    "shuffled_qrels",
    "split_for_training",
    "train_embedder",
    "train_reranker",
    "write_card",
]
