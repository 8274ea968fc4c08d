"""What ``POST /search`` answers for an error (pure: the app turns it into a response; unit-tested without Ray).

A helper's failure (the embedder, the reranker, the profile read) never reaches here: the search answers 200 with
the degraded result flagged. What does reach here is the request's fault (4xx naming the field) or the cluster's:

* the cluster **rejected** the search (429 ``es_rejected_execution_exception``, its search queue full) or is
  unavailable (5xx after the transport's retries, unreachable): **503** ``cluster_unavailable`` with
  ``Retry-After`` -- there is no result to degrade to, and the shopper's app did nothing wrong (a 429 from the
  cluster is not the caller's overload, so it is not passed through as a 429 of ours, nor as a 400);
* the cluster refused the service's credentials: 503 ``cluster_unavailable`` without ``Retry-After``;
* the cluster refused the request itself (other 4xx): 400 (404: the index);
* our own queue is full (the embedding deployment's backpressure on a non-search route): 429 ``overloaded``.
"""

from __future__ import annotations

from dataclasses import dataclass

from connector.errors import (
    AuthenticationError,
    ClusterApiError,
    ClusterError,
    ConfigError,
    EmbeddingError,
    EmbeddingOverloaded,
    EmbeddingRequestError,
    EshybridError,
    ModelMismatchError,
    SearchRequestError,
)

__all__ = ["CLUSTER_RETRY_AFTER_S", "HttpError", "http_error"]

# Seconds a client should wait before retrying after a cluster rejection or outage (the transport has already
# retried 502/503/504 with backoff before the error reached the app).
CLUSTER_RETRY_AFTER_S = 1


@dataclass(frozen=True)
class HttpError:
    """One error answer: status, ``{"error": {"type", "message", "field"}}`` and the ``Retry-After`` header."""

    status: int
    type: str
    message: str
    field: str | None = None
    retry_after_s: int | None = None

    def body(self) -> dict[str, dict[str, str | None]]:
        return {"error": {"type": self.type, "message": self.message, "field": self.field}}

    def headers(self) -> dict[str, str]:
        return {} if self.retry_after_s is None else {"Retry-After": str(self.retry_after_s)}


def http_error(exc: EshybridError) -> HttpError:
    """The answer to ``exc`` (see the module docstring)."""
    field = getattr(exc, "field", None)
    message = str(exc)
    if isinstance(exc, (SearchRequestError, EmbeddingRequestError, ConfigError)):
        return HttpError(403 if getattr(exc, "forbidden", False) else 400, "invalid_request", message, field)
    if isinstance(exc, EmbeddingOverloaded):
        return HttpError(429, "overloaded", message)
    if isinstance(exc, ModelMismatchError):
        return HttpError(409, "model_mismatch", message)
    if isinstance(exc, ClusterApiError):
        status = getattr(exc, "status", 500)
        if status == 404:
            return HttpError(404, "not_found", message, "index")
        if 400 <= status < 500 and status != 429:
            return HttpError(400, "invalid_request", message, field)
    if isinstance(exc, AuthenticationError):  # the service's credentials: retrying will not help
        return HttpError(503, "cluster_unavailable", message)
    if isinstance(exc, ClusterError):
        return HttpError(
            503,
            "cluster_unavailable",
            f"the cluster could not answer; retry in {CLUSTER_RETRY_AFTER_S}s: {message}",
            retry_after_s=CLUSTER_RETRY_AFTER_S,
        )
    if isinstance(exc, EmbeddingError):
        return HttpError(503, "unavailable", message)
    return HttpError(500, "server_error", message)
