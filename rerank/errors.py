"""The one exception root of the rerank service.

The service is its own deployable, so it has its own root (the library's is
``connector.errors``).  Every exception carries its details as attributes and
pickles, because it crosses Ray processes.  Validation errors also subclass
:class:`ValueError`.  ``status`` is the HTTP status the app answers with.
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


class RerankConfigError(RerankServiceError, ValueError):
    """A setting is invalid or does not fit the model (e.g. a yes token that is two tokens)."""


class ModelLoadError(RerankServiceError):
    """The model or its tokenizer could not be loaded from ``model`` (path or hub id)."""


class RerankInputError(RerankServiceError, ValueError):
    """The request is invalid (missing query, non-string document, too many documents...); ``field`` names it."""

    status: int = 422


class RerankOverloaded(RerankServiceError):
    """Too much work is pending in the replica; retry after ``retry_after_s`` seconds (HTTP 429)."""

    status: int = 429


class RerankUnauthorized(RerankServiceError):
    """The bearer token is missing or wrong (HTTP 401)."""

    status: int = 401
