"""What a training run reads: the query split, the documents' texts and the index's own candidates.

* :func:`split_for_training` - the seeded query split (sorted ids, shuffled by ``seed``, the first
  ``train_fraction`` trained on, the rest only scored): every figure a command reports comes from the held-out
  side. It is :func:`connector.quality.split_queries`, so ``eshybrid tune`` and training split alike.
* :func:`corpus_texts` - the text each document is embedded and reranked with, rendered by the one renderer
  (:func:`connector.texts.build_text`) from the BEIR corpus, for the ids asked for.
* :func:`mine_candidates` - each query's lexical and vector candidates from the shop's index, interleaved best
  rank first (the hard negatives), or the hybrid window (what the reranker will see).
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from connector.errors import ConfigError
from connector.quality.evaluation import split_queries
from connector.quality.load import BeirDataset, iter_corpus
from connector.texts import TextPolicy, UnembeddableDocument, build_text

__all__ = [
    "DEFAULT_FIELDS",
    "DISTIL_TEXTS",
    "QuerySplit",
    "corpus_texts",
    "interleave",
    "mine_candidates",
    "split_for_training",
]

logger = logging.getLogger(__name__)

DEFAULT_FIELDS: tuple[str, ...] = ("title", "text")
DISTIL_TEXTS = 10_000
"""Corpus texts a ``--layers`` student is distilled on, at most: every text of a smaller corpus (chosen by the
second dev round in :mod:`connector.train.fit`'s docstring; a corpus above 10,000 texts was not measured)."""


@dataclass(frozen=True)
class QuerySplit:
    """The seeded split of the judged queries."""

    train: list[str]
    heldout: list[str]
    seed: int
    train_fraction: float

    def to_json(self) -> dict[str, Any]:
        return {
            "seed": self.seed,
            "train_fraction": self.train_fraction,
            "train_queries": self.train,
            "heldout_queries": self.heldout,
        }


def split_for_training(dataset: BeirDataset, *, train_fraction: float = 0.7, seed: int = 13) -> QuerySplit:
    """Split the judged queries (those with a relevant judgment) into trained-on and held-out ones."""
    judged = sorted(dataset.judged_queries())
    if len(judged) < 4:
        raise ConfigError(
            f"{dataset.path}: {len(judged)} judged queries; training needs at least 4 (some to train, some to score)",
            field="dataset",
        )
    train, heldout = split_queries(judged, train_fraction=train_fraction, seed=seed)
    return QuerySplit(train, heldout, seed, train_fraction)


def corpus_texts(
    corpus: str | Path, *, ids: Collection[str] | None = None, fields: Sequence[str] = DEFAULT_FIELDS
) -> dict[str, str]:
    """``{doc_id: text}`` of the documents in ``ids`` (all when None), empty texts left out."""
    policy = TextPolicy(fields=tuple(fields))
    wanted = None if ids is None else set(ids)
    out: dict[str, str] = {}
    for row in iter_corpus(corpus):
        doc_id = str(row["_id"])
        if wanted is not None and doc_id not in wanted:
            continue
        try:
            text = build_text(row, policy, strict=False)
        except UnembeddableDocument:
            continue
        if text:
            out[doc_id] = text
    return out


def interleave(*rankings: Sequence[str]) -> list[str]:
    """Round-robin merge of ranked id lists, first occurrence kept (rank 1 of each leg, then rank 2, ...)."""
    out: dict[str, None] = {}
    for i in range(max((len(r) for r in rankings), default=0)):
        for ranking in rankings:
            if i < len(ranking):
                out.setdefault(ranking[i], None)
    return list(out)


def mine_candidates(
    search: Any,
    queries: Mapping[str, str],
    *,
    modes: Sequence[str] = ("bm25", "knn"),
    depth: int = 30,
) -> dict[str, list[str]]:
    """Each query's candidates from the index: the legs of ``modes`` (``search.search(mode=...)``), interleaved.

    Args:
        search: a :class:`connector.search.HybridSearch` on the shop's index (with the embedder of the model
            that filled its vectors, for ``knn`` and ``hybrid``).
        queries: ``{query_id: text}``.
        modes: ``("bm25", "knn")`` for an embedder's hard negatives; ``("hybrid",)`` for a reranker's window.
        depth: hits per leg.
    """
    if depth < 1:
        raise ConfigError("depth must be >= 1", field="depth")
    out: dict[str, list[str]] = {}
    for qid, text in queries.items():
        legs = [[hit.id for hit in search.search(text, mode=mode, size=depth, source=False).hits] for mode in modes]
        out[qid] = interleave(*legs)
    logger.info(
        "mined %s candidates for %s queries (%s, depth %s)", sum(map(len, out.values())), len(out), modes, depth
    )
    return out
