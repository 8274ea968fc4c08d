"""What POST /search answers for each error: the request's fault 4xx, the cluster's 503 with Retry-After."""

from __future__ import annotations

import pytest

from connector.errors import (
    AuthenticationError,
    ClusterApiError,
    ClusterConnectionError,
    EmbeddingOverloaded,
    EmbeddingServiceUnavailable,
    EshybridError,
    PaginationDepthError,
    SearchRequestError,
)
from connector.search.http_errors import CLUSTER_RETRY_AFTER_S, http_error


def _api(status: int) -> ClusterApiError:
    return ClusterApiError(f"failed with {status}", url="http://c", status=status, error_type="x", reason="y")


@pytest.mark.parametrize(
    ("exc", "status", "type_", "retry_after"),
    [
        (SearchRequestError("bad filter", field="filters"), 400, "invalid_request", None),
        (SearchRequestError("not served", field="index", forbidden=True), 403, "invalid_request", None),
        (PaginationDepthError("too deep", field="page", page=20, size=10, max_depth=100), 400, "invalid_request", None),
        (_api(400), 400, "invalid_request", None),
        (_api(404), 404, "not_found", None),
        # the cluster's search queue is full: not the caller's overload, not a bad request
        (_api(429), 503, "cluster_unavailable", CLUSTER_RETRY_AFTER_S),
        (_api(503), 503, "cluster_unavailable", CLUSTER_RETRY_AFTER_S),
        (ClusterConnectionError("refused", url="http://c"), 503, "cluster_unavailable", CLUSTER_RETRY_AFTER_S),
        (AuthenticationError("refused", url="http://c", status=401), 503, "cluster_unavailable", None),
        (EmbeddingOverloaded("full", url="http://e"), 429, "overloaded", None),
        (EmbeddingServiceUnavailable("down", url="http://e"), 503, "unavailable", None),
        (EshybridError("unexpected"), 500, "server_error", None),
    ],
)
def test_each_error_has_its_answer(exc: EshybridError, status: int, type_: str, retry_after: int | None) -> None:
    answer = http_error(exc)
    assert (answer.status, answer.type) == (status, type_)
    assert answer.headers() == ({"Retry-After": str(retry_after)} if retry_after else {})
    assert answer.body()["error"]["type"] == type_ and answer.body()["error"]["message"]


def test_a_request_error_names_its_field() -> None:
    assert http_error(SearchRequestError("bad", field="filters[0]")).body()["error"]["field"] == "filters[0]"
