"""Relevance evaluation: BEIR reading, loading a corpus, ``eval`` and ``tune``."""

from __future__ import annotations

from connector.quality.evaluation import (
    METRICS,
    Comparison,
    EvalReport,
    TuneReport,
    compare_modes,
    default_grid,
    evaluate_runs,
    evaluate_search,
    ranking_to_run,
    split_queries,
    tune_fusion,
)
from connector.quality.load import (
    BeirDataset,
    LoadReport,
    iter_corpus,
    load_corpus,
    plain_index_body,
    read_beir,
    read_qrels,
    read_queries,
    write_beir,
)
from connector.quality.selection import (
    Candidate,
    CandidateResult,
    FusionComparison,
    compare_fusions,
    fusion_candidates,
)
from connector.quality.tuning import LexicalChoice, Recommendation, recommend, write_recommendation

__all__ = [
    "BeirDataset",
    "Candidate",
    "CandidateResult",
    "FusionComparison",
    "LexicalChoice",
    "Recommendation",
    "compare_fusions",
    "fusion_candidates",
    "recommend",
    "write_recommendation",
    "Comparison",
    "EvalReport",
    "LoadReport",
    "METRICS",
    "TuneReport",
    "compare_modes",
    "default_grid",
    "evaluate_runs",
    "evaluate_search",
    "iter_corpus",
    "load_corpus",
    "plain_index_body",
    "ranking_to_run",
    "read_beir",
    "read_qrels",
    "read_queries",
    "split_queries",
    "tune_fusion",
    "write_beir",
]
