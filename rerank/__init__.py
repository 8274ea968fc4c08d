"""The rerank service: cross-encoders and LLM rerankers behind ``score(query, documents)``.

``load_in_process(model, **settings)`` (or ``load_reranker(settings)``) gives a model to use in-process, e.g. as
``connector.RerankConfig(model=..., loader=rerank.load_in_process)``; ``build_app(settings)`` gives the
Ray Serve application (``POST /v1/rerank``); ``eshybrid serve rerank --model PATH_OR_ID`` runs it.
Settings and errors import without Ray or torch; the rest is loaded on first use.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from rerank.errors import (
    ModelLoadError,
    RerankConfigError,
    RerankInputError,
    RerankOverloaded,
    RerankServiceError,
    RerankUnauthorized,
)
from rerank.settings import DEFAULT_LLM_INSTRUCTION, DEFAULT_LLM_TEMPLATE, RerankSettings

if TYPE_CHECKING:
    from rerank.app import create_app
    from rerank.deployment import RerankDeployment, build_app, deployment_options
    from rerank.loading import detect_kind, load_in_process, load_reranker
    from rerank.models import CrossEncoderReranker, LLMReranker, Reranker, ScoredPairs

__all__ = [
    "DEFAULT_LLM_INSTRUCTION",
    "DEFAULT_LLM_TEMPLATE",
    "RerankSettings",
    "RerankServiceError",
    "RerankConfigError",
    "ModelLoadError",
    "RerankInputError",
    "RerankOverloaded",
    "RerankUnauthorized",
    "Reranker",
    "ScoredPairs",
    "CrossEncoderReranker",
    "LLMReranker",
    "load_reranker",
    "load_in_process",
    "detect_kind",
    "create_app",
    "build_app",
    "deployment_options",
    "RerankDeployment",
    "LMQueryRewriter",
    "load_rewriter",
]

_LAZY = {
    "Reranker": "rerank.models",
    "ScoredPairs": "rerank.models",
    "CrossEncoderReranker": "rerank.models",
    "LLMReranker": "rerank.models",
    "load_reranker": "rerank.loading",
    "load_in_process": "rerank.loading",
    "detect_kind": "rerank.loading",
    "create_app": "rerank.app",
    "build_app": "rerank.deployment",
    "deployment_options": "rerank.deployment",
    "RerankDeployment": "rerank.deployment",
    "LMQueryRewriter": "rerank.rewriter",
    "load_rewriter": "rerank.rewriter",
}


def __getattr__(name: str) -> Any:
    # torch and Ray are heavy; import them only when a model or the service is used.
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'rerank' has no attribute {name!r}")
