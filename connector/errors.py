"""The one exception root of the eshybrid library.

Every exception carries its details as attributes and pickles (they cross Ray
processes). Validation errors also subclass :class:`ValueError`.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "DetailedError",
    "EshybridError",
    "ConfigError",
    "ClusterError",
    "ClusterApiError",
    "ClusterConnectionError",
    "AuthenticationError",
    "TLSVerificationError",
    "UnsupportedServerError",
    "LocalClusterError",
    "EmbeddingError",
    "EmbeddingServiceUnavailable",
    "EmbeddingOverloaded",
    "EmbeddingRequestError",
    "ModelMismatchError",
    "SearchError",
    "SearchRequestError",
    "PaginationDepthError",
    "MigrationError",
    "MigrationGraphError",
    "MultipleHeadsError",
    "MigrationCycleError",
    "MissingRevisionError",
    "MigrationLockedError",
    "IrreversibleMigrationError",
    "MigrationLockLostError",
    "JobError",
    "BulkError",
    "RerankError",
    "RerankServiceUnavailable",
    "RerankTimeout",
    "RerankOverloaded",
    "RerankRequestError",
]


class DetailedError(Exception):
    """An exception whose constructor keyword arguments become attributes and that pickles.

    The shared mechanism behind each deployable's own root (this library's
    :class:`EshybridError`, the embedding and rerank services' roots): callers read
    ``err.status`` or ``err.index`` instead of parsing the message, and the details
    survive crossing Ray processes.
    """

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


def _rebuild(cls: type[DetailedError], message: str, details: dict[str, Any]) -> DetailedError:
    err = cls.__new__(cls)
    DetailedError.__init__(err, message, **details)
    return err


class EshybridError(DetailedError):
    """Root of every error raised by the eshybrid library."""


class ConfigError(EshybridError, ValueError):
    """A setting or argument is invalid."""


class ClusterError(EshybridError):
    """Talking to a cluster failed."""


class ClusterApiError(ClusterError):
    """The cluster answered with an error status (``status``, ``error_type``, ``reason``)."""


class ClusterConnectionError(ClusterError):
    """The cluster could not be reached."""


class AuthenticationError(ClusterError):
    """The cluster refused the credentials (401/403)."""


class TLSVerificationError(ClusterError):
    """The server's certificate could not be verified with the given CA."""


class UnsupportedServerError(ClusterError):
    """The server's flavor or version is not supported."""


class LocalClusterError(EshybridError):
    """Starting or stopping a local development cluster failed."""


class EmbeddingError(EshybridError):
    """The embedding service failed."""


class EmbeddingServiceUnavailable(EmbeddingError):
    """The embedding service could not be reached or answered 5xx."""


class EmbeddingOverloaded(EmbeddingError):
    """The embedding service answered 429 (its queue is full)."""


class EmbeddingRequestError(EmbeddingError, ValueError):
    """The embedding service rejected the request (4xx other than 429)."""


class ModelMismatchError(EmbeddingError, ValueError):
    """The service's model or dims differ from what the index's ``_meta`` records."""


class SearchError(EshybridError):
    """A hybrid search failed."""


class SearchRequestError(SearchError, ValueError):
    """A search request is invalid (bad filter, size, page...)."""


class PaginationDepthError(SearchRequestError):
    """The requested page lies beyond the maximum fused ranking depth."""


class MigrationError(EshybridError):
    """A migration failed."""


class MigrationGraphError(MigrationError, ValueError):
    """The revision graph is invalid."""


class MultipleHeadsError(MigrationGraphError):
    """More than one revision has no successor."""


class MigrationCycleError(MigrationGraphError):
    """The revision graph has a cycle."""


class MissingRevisionError(MigrationGraphError):
    """A revision names a ``down_revision`` that does not exist."""


class MigrationLockedError(MigrationError):
    """Another runner holds the migration lock."""


class JobError(EshybridError):
    """A backfill or reindex job failed."""


class BulkError(JobError):
    """Some items of a bulk chunk failed; ``items`` holds every failure of that chunk."""


class RerankError(EshybridError):
    """The reranker failed."""


class RerankServiceUnavailable(RerankError):
    """The rerank service could not be reached or answered 5xx."""


class RerankTimeout(RerankError):
    """The reranker did not answer within its time budget (``timeout_s``)."""


class RerankOverloaded(RerankError):
    """The rerank service answered 429 (its queue is full); ``retry_after_s`` says when to retry."""


class RerankRequestError(RerankError, ValueError):
    """The rerank service rejected the request (4xx other than 429); ``status`` and ``param`` tell why."""


class IrreversibleMigrationError(MigrationError):
    """A migration cannot be undone automatically; the message says what to do instead."""


class MigrationLockLostError(MigrationLockedError):
    """The migration lock expired or was taken over while this runner held it."""
