"""The one exception root of the rerank service.

The service is its own deployable, so it has its own root (the library's is
``connector.errors``).  Every exception carries its details as attributes and
pickles, because it crosses Ray processes.  Validation errors also subclass
:class:`ValueError`.  ``status`` is the HTTP status the app answers with.  The
attributes each class carries are declared on it (set when the raiser gives them).
"""

from __future__ import annotations

from connector.errors import DetailedError

__all__ = [
    "RerankServiceError",
    "RerankConfigError",
    "ModelLoadError",
    "RerankInputError",
    "RerankOverloaded",
    "RerankUnauthorized",
]


class RerankServiceError(DetailedError):
    """Root of every error raised by the rerank service.

    Keyword arguments given to the constructor become attributes
    (``err.limit``, ``err.field``...).
    """

    status: int = 500
    field: str | None
    """The request field or setting at fault (``documents[3]``, ``yes_token``)."""


class RerankConfigError(RerankServiceError, ValueError):
    """A setting is invalid or does not fit the model (e.g. a yes token that is two tokens)."""

    placeholder: str
    """The template placeholder that is missing or repeated (``{query}``)."""
    token: str
    """The yes/no token that is not one token of the model's vocabulary."""
    architectures: list[str]
    """The model's architectures, when they do not tell the kind of reranker."""
    max_length: int
    """The token budget a template does not fit in."""
    fixed_tokens: int
    """The tokens the template takes without query and document."""


class ModelLoadError(RerankServiceError):
    """The model or its tokenizer could not be loaded from ``model`` (path or hub id)."""

    model: str
    """The checkpoint folder or hub id asked for."""


class RerankInputError(RerankServiceError, ValueError):
    """The request is invalid (missing query, non-string document, too many documents...); ``field`` names it."""

    status: int = 422


class RerankOverloaded(RerankServiceError):
    """Too much work is pending in the replica; retry after ``retry_after_s`` seconds (HTTP 429)."""

    status: int = 429
    retry_after_s: float
    """When to retry (the answer's ``Retry-After``)."""
    pending_pairs: int
    """(query, document) pairs waiting in the replica when this request was refused."""


class RerankUnauthorized(RerankServiceError):
    """The bearer token is missing or wrong (HTTP 401)."""

    status: int = 401
