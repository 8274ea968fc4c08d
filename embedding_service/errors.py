"""The one exception root of the embedding service (a deployable of its own).

Every exception carries its details as attributes and pickles, because they
cross Ray processes (replica -> handle caller). Validation errors also
subclass :class:`ValueError`. ``status`` is the HTTP status the ingress answers.
"""

from __future__ import annotations

from connector.errors import DetailedError

__all__ = [
    "EmbeddingServiceError",
    "SettingsError",
    "ModelLoadError",
    "InvalidInputError",
    "AuthError",
    "OverloadedError",
]


class EmbeddingServiceError(DetailedError):
    """Root of every error raised by the embedding service.

    Keyword arguments given to the constructor become attributes
    (``err.field``, ``err.status``), so callers need not parse the message.
    """

    status: int = 500


class SettingsError(EmbeddingServiceError, ValueError):
    """A service setting is invalid or settings contradict each other."""


class ModelLoadError(EmbeddingServiceError):
    """The model folder or hub id cannot be loaded (missing files, unsupported modules)."""


class InvalidInputError(EmbeddingServiceError, ValueError):
    """A request is invalid; ``field`` names the offending field (e.g. ``input[3]``)."""

    status = 422


class AuthError(EmbeddingServiceError):
    """The bearer token is missing or wrong."""

    status = 401


class OverloadedError(EmbeddingServiceError):
    """Too much work is pending; retry after ``retry_after_s`` seconds."""

    status = 429
