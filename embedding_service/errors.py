"""The one exception root of the embedding service (a deployable of its own).

Every exception carries its details as attributes and pickles, because they
cross Ray processes (replica -> handle caller). Validation errors also
subclass :class:`ValueError`. ``status`` is the HTTP status the ingress answers.
The attributes each class carries are declared on it (set when the raiser gives them).
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
    field: str | None
    """The request field or setting at fault (``input[3]``, ``model``, ``max_batch_size``)."""


class SettingsError(EmbeddingServiceError, ValueError):
    """A service setting is invalid or settings contradict each other."""


class ModelLoadError(EmbeddingServiceError):
    """The model folder or hub id cannot be loaded (missing files, unsupported modules)."""

    model: str
    """The model name or hub id asked for."""
    path: str
    """The folder or file that could not be read."""
    device: str
    """The device the model was asked to load on."""


class InvalidInputError(EmbeddingServiceError, ValueError):
    """A request is invalid; ``field`` names the offending field (e.g. ``input[3]``)."""

    status = 422


class AuthError(EmbeddingServiceError):
    """The bearer token is missing or wrong."""

    status = 401


class OverloadedError(EmbeddingServiceError):
    """Too much work is pending; retry after ``retry_after_s`` seconds."""

    status = 429
    retry_after_s: float
    """When to retry (the answer's ``Retry-After``)."""
    pending_texts: int
    """Texts waiting in the replica when this request was refused."""
