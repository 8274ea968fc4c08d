"""Hybrid search from application code: ``HybridSearch`` and its building blocks.

Importing this package never imports torch, transformers or ray.
"""

from __future__ import annotations

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
from connector.search.query_vectors import Embedder

__all__ = [
    "AsyncHybridSearch",
    "DEFAULT_FUSION",
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
    "SearchHit",
    "SearchResponse",
    "SearchTimings",
    "fuse",
    "linear_fuse",
    "normalize",
    "parse_filter_expression",
    "rrf_fuse",
    "validate_filters",
]
