"""The rerank service's errors declare the attributes they carry, and pickle with them (they cross Ray)."""

from __future__ import annotations

import pickle
import typing

import pytest

from rerank.api import MalformedRequestError
from rerank.errors import (
    ModelLoadError,
    RerankConfigError,
    RerankInputError,
    RerankOverloaded,
    RerankServiceError,
    RerankUnauthorized,
)


@pytest.mark.parametrize(
    ("cls", "declared"),
    [
        (RerankServiceError, {"status", "field"}),
        (RerankInputError, {"status", "field"}),
        (MalformedRequestError, {"status", "field"}),
        (RerankUnauthorized, {"status", "field"}),
        (ModelLoadError, {"status", "field", "model"}),
        (RerankConfigError, {"status", "field", "placeholder", "token", "architectures", "max_length"}),
        (RerankOverloaded, {"status", "field", "retry_after_s", "pending_pairs"}),
    ],
)
def test_carried_attributes_are_declared(cls: type[RerankServiceError], declared: set[str]) -> None:
    assert declared <= set(typing.get_type_hints(cls))


def test_they_pickle_with_their_attributes() -> None:
    err = RerankOverloaded("full", retry_after_s=2.5, pending_pairs=300)
    back = pickle.loads(pickle.dumps(err))
    assert (type(back), str(back), back.status, back.retry_after_s, back.pending_pairs) == (
        RerankOverloaded,
        "full",
        429,
        2.5,
        300,
    )
    config_error = pickle.loads(pickle.dumps(RerankConfigError("two tokens", field="yes_token", token="yes")))
    assert (config_error.field, config_error.token, config_error.status) == ("yes_token", "yes", 500)
    assert isinstance(config_error, ValueError)
