"""The one exception root of the embedding service (a deployable of its own).

Every exception carries its details as attributes and pickles, because they
cross Ray processes (replica -> handle caller). Validation errors also
subclass :class:`ValueError`. ``status`` is the HTTP status the ingress answers.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "EmbeddingServiceError",
    "SettingsError",
    "ModelLoadError",
    "InvalidInputError",
    "AuthError",
    "OverloadedError",
]


class EmbeddingServiceError(Exception):
    """Root of every error raised by the embedding service.

    Keyword arguments given to the constructor become attributes
    (``err.field``, ``err.status``), so callers need not parse the message.
    """

    status: int = 500

    def __init__(self, message: str = "", **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details = details
        for key, value in details.items():
            setattr(self, key, value)

    def __reduce__(self) -> tuple[Any, ...]:
        # Exceptions with keyword-only details do not pickle by default.
        return (_rebuild, (type(self), self.message, self.details))

    def __str__(self) -> str:
        return self.message


def _rebuild(cls: type[EmbeddingServiceError], message: str, details: dict[str, Any]) -> EmbeddingServiceError:
    err = cls.__new__(cls)
    EmbeddingServiceError.__init__(err, message, **details)
    return err


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
