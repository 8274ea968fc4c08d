"""``eshybrid load | eval | tune`` as plain functions: one call per command, no argument parsing, no printing.

Each takes what the command line describes (a connected cluster or a built
:class:`~connector.search.hybrid.HybridSearch`, a BEIR dataset) and returns the report
the command prints.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from connector.cluster.client import Cluster
from connector.quality.evaluation import EvalReport, evaluate_search
from connector.quality.load import BeirDataset, LoadReport, load_corpus, plain_index_body
from connector.quality.tuning import Recommendation, recommend, write_recommendation
from connector.search.hybrid import HybridSearch

__all__ = ["evaluate_dataset", "load_beir_corpus", "tune_dataset"]

# Metrics are read at most this deep (recall@100), whatever the search's max_depth.
_EVAL_DEPTH = 100


def load_beir_corpus(
    cluster: Cluster,
    index: str,
    dataset: str | Path,
    *,
    shards: int = 1,
    replicas: int = 0,
    chunk_size: int = 500,
    replace: bool = False,
    analyzer: str = "english",
) -> LoadReport:
    """Create ``index`` as a plain BM25 index (``title``, ``text``) and bulk-load a BEIR corpus into it.

    Failed documents are counted in the report, not raised.

    Args:
        cluster: the connected cluster.
        index: the index to create.
        dataset: a BEIR folder or its ``corpus.jsonl``.
        shards: primary shards.
        replicas: replicas per shard.
        chunk_size: documents per ``_bulk``.
        replace: delete the index first if it exists.
        analyzer: ``english`` (default) or ``standard`` for every text field
            (:func:`~connector.quality.load.plain_index_body`).
    """
    body = plain_index_body(cluster.capabilities, shards=shards, replicas=replicas, analyzer=analyzer)
    return load_corpus(
        cluster, index, dataset, index_body=body, chunk_size=chunk_size, replace=replace, raise_on_error=False
    )


def evaluate_dataset(
    search: HybridSearch,
    dataset: BeirDataset,
    *,
    modes: Sequence[str],
    strategy: str | None = None,
    user: str | None = None,
    personal_weight: float | None = None,
) -> EvalReport:
    """Run each judged query of ``dataset`` in each of ``modes`` and compare the modes.

    Args:
        search: the search to evaluate (its index, fusion, rerank and connections).
        dataset: queries and judgments.
        modes: search modes (``bm25``, ``knn``, ``hybrid``...).
        strategy: fuse client-side or server-side (``auto``, ``client``, ``server``).
        user, personal_weight: personalize every query for this shopper (``HybridSearch.search(user=)``).
    """
    return evaluate_search(
        search,
        dataset.queries,
        dataset.qrels,
        modes=modes,
        depth=min(_EVAL_DEPTH, search.max_depth),
        strategy=strategy,
        user=user,
        personal_weight=personal_weight,
    )


def tune_dataset(
    search: HybridSearch,
    dataset: BeirDataset,
    *,
    qrels_path: str | None = None,
    write: bool = True,
    epsilon: float = 0.01,
    bootstrap: int = 1000,
    seed: int = 13,
) -> Recommendation:
    """Choose the index's lexical form and fusion from ``dataset``'s judgments; record them in ``_meta``.

    Args:
        search: the index, embedder and fields to tune (its own fusion is not used).
        dataset: queries and judgments.
        qrels_path: the judgments file when not the dataset's own (its name and date are recorded).
        write: store the recommendation in ``_meta.eshybrid.search_defaults`` (``False``: report only).
        epsilon, bootstrap, seed: the selection rule (:mod:`connector.quality.selection`).
    """
    report = recommend(
        search,
        dataset,
        qrels_path=qrels_path,
        epsilon=epsilon,
        bootstrap=bootstrap,
        seed=seed,
        depth=min(_EVAL_DEPTH, search.max_depth),
    )
    if write:
        write_recommendation(search.cluster, search.index, report.search_defaults)
        report.written = True
    return report
