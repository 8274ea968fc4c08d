"""Hybrid search from application code: ``HybridSearch`` and its building blocks.

Importing this package never imports torch, transformers or ray.
"""

from __future__ import annotations

from connector.search.experiment import ArmConfig, ExperimentSpec, aexperiment_search, experiment_search
from connector.search.filters import parse_filter_expression, validate_filters
from connector.search.fusion import FusedDoc, LegHit, LegScore, fuse, linear_fuse, normalize, rrf_fuse
from connector.search.hybrid import AsyncHybridSearch, HybridSearch, Reranker
from connector.search.models import (
    DEFAULT_FUSION,
    ExecutedRequest,
    FusionConfig,
    HitExplanation,
    LegExplanation,
    LexicalConfig,
    SearchHit,
    SearchResponse,
    SearchTimings,
)
from connector.search.options import SearchOptions
from connector.search.personal import DEFAULT_PERSONAL_WEIGHT, UserProfile
from connector.search.query_vectors import Embedder

__all__ = [
    "ArmConfig",
    "ExperimentSpec",
    "aexperiment_search",
    "experiment_search",
    "AsyncHybridSearch",
    "DEFAULT_FUSION",
    "DEFAULT_PERSONAL_WEIGHT",
    "Embedder",
    "ExecutedRequest",
    "FusedDoc",
    "FusionConfig",
    "HitExplanation",
    "HybridSearch",
    "LegExplanation",
    "LegHit",
    "LegScore",
    "LexicalConfig",
    "Reranker",
    "SearchOptions",
    "SearchHit",
    "SearchResponse",
    "SearchTimings",
    "UserProfile",
    "fuse",
    "linear_fuse",
    "normalize",
    "parse_filter_expression",
    "rrf_fuse",
    "validate_filters",
]
