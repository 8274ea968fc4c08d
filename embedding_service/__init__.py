"""The embedding service: a Ray Serve application that turns texts into vectors.

``build_app(settings)`` gives the application for ``serve.run``; ``eshybrid serve embed`` runs it.
Settings and errors import without Ray or torch; the rest is loaded on first use.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from embedding_service.errors import (
    AuthError,
    EmbeddingServiceError,
    InvalidInputError,
    ModelLoadError,
    OverloadedError,
    SettingsError,
)
from embedding_service.settings import DEFAULT_MODEL_ID, EmbeddingServiceSettings

if TYPE_CHECKING:
    from embedding_service.deployment import EmbeddingDeployment, build_app, deployment_options
    from embedding_service.model import Embedder
    from embedding_service.model_spec import ModelSpec, build_model_spec

__all__ = [
    "DEFAULT_MODEL_ID",
    "EmbeddingServiceSettings",
    "EmbeddingServiceError",
    "SettingsError",
    "ModelLoadError",
    "InvalidInputError",
    "AuthError",
    "OverloadedError",
    "build_app",
    "deployment_options",
    "EmbeddingDeployment",
    "Embedder",
    "ModelSpec",
    "build_model_spec",
]

_LAZY = {
    "build_app": "embedding_service.deployment",
    "deployment_options": "embedding_service.deployment",
    "EmbeddingDeployment": "embedding_service.deployment",
    "Embedder": "embedding_service.model",
    "ModelSpec": "embedding_service.model_spec",
    "build_model_spec": "embedding_service.model_spec",
}


def __getattr__(name: str) -> Any:
    # Ray and torch are heavy; import them only when the service itself is used.
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'embedding_service' has no attribute {name!r}")
