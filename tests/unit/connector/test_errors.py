"""connector.errors: details are declared attributes, survive pickling, and validation errors stay ValueErrors."""

from __future__ import annotations

import pickle
import typing

import pytest

from connector import errors
from connector.errors import (
    AuthenticationError,
    BulkError,
    ClusterApiError,
    ConfigError,
    DetailedError,
    EmbeddingOverloaded,
    EshybridError,
    MigrationLockLostError,
    PaginationDepthError,
    RerankOverloaded,
    RerankRequestError,
    SearchRequestError,
)

_ERROR_CLASSES = [getattr(errors, name) for name in errors.__all__]


@pytest.mark.parametrize(
    ("cls", "attributes"),
    [
        (ClusterApiError, {"url", "status", "error_type", "reason", "body"}),
        (AuthenticationError, {"url", "status"}),
        (ConfigError, {"field", "option", "index", "path"}),
        (SearchRequestError, {"field", "forbidden"}),
        (PaginationDepthError, {"field", "page", "size", "max_depth"}),
        (EmbeddingOverloaded, {"status", "retry_after_s"}),
        (RerankOverloaded, {"url", "status", "retry_after_s"}),
        (RerankRequestError, {"url", "status", "param"}),
        (BulkError, {"items", "index"}),
        (MigrationLockLostError, {"index", "owner", "expires_at_ms"}),
    ],
)
def test_details_are_declared_for_type_checkers(cls: type[DetailedError], attributes: set[str]) -> None:
    assert attributes <= set(typing.get_type_hints(cls))


def test_declared_details_exist_only_when_passed() -> None:
    """Annotations only: an optional detail is absent (``getattr(err, name, default)``), never a class default."""
    err = EmbeddingOverloaded("busy")
    assert getattr(err, "retry_after_s", 7.0) == 7.0
    assert not hasattr(ConfigError("bad"), "field")


@pytest.mark.parametrize("cls", _ERROR_CLASSES)
def test_every_error_pickles_with_its_details(cls: type[DetailedError]) -> None:
    err = cls("boom", status=503, url="http://h:9200", field="size")
    back = pickle.loads(pickle.dumps(err))
    assert type(back) is cls and str(back) == "boom"
    assert (back.details, getattr(back, "status", None), getattr(back, "field", None)) == (err.details, 503, "size")
    assert isinstance(back, EshybridError) or cls is DetailedError


def test_validation_errors_are_value_errors() -> None:
    for cls in (ConfigError, SearchRequestError, PaginationDepthError, RerankRequestError):
        assert issubclass(cls, ValueError)
    assert not issubclass(ClusterApiError, ValueError)
