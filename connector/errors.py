"""The one exception root of the eshybrid library.

Every exception carries its details as attributes and pickles (they cross Ray
processes). Validation errors also subclass :class:`ValueError`.

Each class declares the details its raisers pass as class-level annotations (no
values: an attribute exists on an instance only when it was passed), so a type
checker sees ``err.status``; ``getattr(err, name, default)`` stays the way to read an
optional one.
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
    "RecordValidationError",
]


class DetailedError(Exception):
    """An exception whose constructor keyword arguments become attributes and that pickles.

    The shared mechanism behind each deployable's own root (this library's
    :class:`EshybridError`, the embedding and rerank services' roots): callers read
    ``err.status`` or ``err.index`` instead of parsing the message, and the details
    survive crossing Ray processes.
    """

    message: str
    details: dict[str, Any]

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
    """A setting or argument is invalid (``field``: which one; ``option``, ``index``, ``path`` when known)."""

    field: str
    option: str
    index: str
    path: str


class ClusterError(EshybridError):
    """Talking to a cluster failed (``url``: the cluster, when known)."""

    url: str


class ClusterApiError(ClusterError):
    """The cluster answered with an error status (``status``, ``error_type``, ``reason``, the JSON ``body``)."""

    status: int
    error_type: str
    reason: str
    body: dict[str, Any] | None


class ClusterConnectionError(ClusterError):
    """The cluster could not be reached."""


class AuthenticationError(ClusterError):
    """The cluster refused the credentials (401/403: ``status``)."""

    status: int


class TLSVerificationError(ClusterError):
    """The server's certificate could not be verified with the given CA."""


class UnsupportedServerError(ClusterError):
    """The server's flavor or version is not supported (``flavor``, ``version``: as reported, when read)."""

    flavor: str
    version: str | None


class LocalClusterError(EshybridError):
    """Starting or stopping a local development cluster failed (details name what: ``name``, ``port``...)."""

    name: str
    flavor: str
    version: str
    url: str
    port: int
    pid: int
    returncode: int
    log_tail: str
    artifact: str
    module: str
    plugin: str
    plugins: list[str]
    archive: str
    mvn: str
    java_home: str
    java_range: tuple[int, int]
    user: str


class EmbeddingError(EshybridError):
    """The embedding service failed (a bad answer: ``expected``/``got`` vectors, a bad ``index``, the ``body``)."""

    expected: int
    got: int
    index: Any
    body: dict[str, Any]


class EmbeddingServiceUnavailable(EmbeddingError):
    """The embedding service could not be reached (``url``), answered 5xx (``status``, ``retryable``) or not in time
    (``timeout_s``)."""

    url: str
    status: int
    retryable: bool
    retry_after_s: float | None
    timeout_s: float


class EmbeddingOverloaded(EmbeddingError):
    """The embedding service (``url``) answered 429 (its queue is full); ``retry_after_s``: its ``Retry-After``, if any."""

    url: str
    status: int
    retry_after_s: float | None


class EmbeddingRequestError(EmbeddingError, ValueError):
    """The embedding service (``url``) rejected the request (4xx other than 429: ``status``; ``param``: the bad input)."""

    url: str
    status: int
    param: str | None


class ModelMismatchError(EmbeddingError, ValueError):
    """The service's model or dims (``actual``) differ from what the index's ``_meta`` records (``expected``)."""

    expected: Any
    actual: Any


class SearchError(EshybridError):
    """A hybrid search failed."""


class SearchRequestError(SearchError, ValueError):
    """A search request is invalid (bad filter, size, page...: ``field``; ``forbidden`` for a refused filter)."""

    field: str
    forbidden: bool


class PaginationDepthError(SearchRequestError):
    """The requested page (``page`` x ``size``) lies beyond the maximum fused ranking depth (``max_depth``)."""

    page: int
    size: int
    max_depth: int


class MigrationError(EshybridError):
    """A migration failed (``revision``, ``field``, ``lacking`` when known)."""

    revision: str
    field: str
    lacking: Any


class MigrationGraphError(MigrationError, ValueError):
    """The revision graph is invalid (``path`` of the revision file, ``bases`` when several)."""

    path: str
    bases: list[str]


class MultipleHeadsError(MigrationGraphError):
    """More than one revision has no successor (``heads``)."""

    heads: list[str]


class MigrationCycleError(MigrationGraphError):
    """The revision graph has a cycle (``cycle``)."""

    cycle: list[str]


class MissingRevisionError(MigrationGraphError):
    """A revision names a ``down_revision`` that does not exist (``missing``), or ``revision`` is unknown."""

    missing: str


class MigrationLockedError(MigrationError):
    """Another runner (``owner``) holds the migration lock of ``index`` until ``expires_at_ms``."""

    index: str
    owner: str
    expires_at_ms: int


class JobError(EshybridError):
    """A backfill or reindex job failed (``failures``/``lost``: Ray tasks that failed / died with their node)."""

    failures: list[str]
    lost: list[str]


class BulkError(JobError):
    """Some items of a bulk chunk failed; ``items`` holds every failure of that chunk (``index``: when known)."""

    items: list[Any]
    index: str


class RerankError(EshybridError):
    """The reranker failed."""


class RerankServiceUnavailable(RerankError):
    """The rerank service (``url``) could not be reached or answered 5xx (``status``, ``retryable``)."""

    url: str
    status: int
    retryable: bool
    retry_after_s: float | None


class RerankTimeout(RerankError):
    """The reranker (``url``, when remote) did not answer within its time budget (``timeout_s``)."""

    timeout_s: float
    url: str


class RerankOverloaded(RerankError):
    """The rerank service answered 429 (its queue is full); ``retry_after_s`` says when to retry."""

    url: str
    status: int
    retry_after_s: float | None


class RerankRequestError(RerankError, ValueError):
    """The rerank service rejected the request (4xx other than 429); ``status`` and ``param`` tell why."""

    url: str
    status: int
    param: str | None


class IrreversibleMigrationError(MigrationError):
    """A migration cannot be undone automatically; the message says what to do instead."""


class MigrationLockLostError(MigrationLockedError):
    """The migration lock expired or was taken over while this runner held it."""


class RecordValidationError(EshybridError, ValueError):
    """A UBI query or event record is invalid (``field``: the dotted field; ``record``: its position in the
    request, ``path`` / ``line`` for a JSON-lines file)."""

    field: str
    record: int
    path: str
    line: int
