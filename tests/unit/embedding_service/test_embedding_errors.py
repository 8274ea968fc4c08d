"""The embedding service's errors declare the attributes they carry, and pickle with them (they cross Ray)."""

from __future__ import annotations

import pickle
import typing

import pytest

from embedding_service.errors import (
    AuthError,
    EmbeddingServiceError,
    InvalidInputError,
    ModelLoadError,
    OverloadedError,
    SettingsError,
)


@pytest.mark.parametrize(
    ("cls", "declared"),
    [
        (EmbeddingServiceError, {"status", "field"}),
        (InvalidInputError, {"status", "field"}),
        (SettingsError, {"status", "field"}),
        (AuthError, {"status", "field"}),
        (ModelLoadError, {"status", "field", "model", "path", "device"}),
        (OverloadedError, {"status", "field", "retry_after_s", "pending_texts"}),
    ],
)
def test_carried_attributes_are_declared(cls: type[EmbeddingServiceError], declared: set[str]) -> None:
    assert declared <= set(typing.get_type_hints(cls))


def test_they_pickle_with_their_attributes() -> None:
    err = OverloadedError("busy", retry_after_s=2.0, pending_texts=9)
    back = pickle.loads(pickle.dumps(err))
    assert (type(back), str(back), back.status, back.retry_after_s, back.pending_texts) == (
        OverloadedError,
        "busy",
        429,
        2.0,
        9,
    )
    field_error = pickle.loads(pickle.dumps(InvalidInputError("too long", field="input[3]")))
    assert (field_error.status, field_error.field) == (422, "input[3]")
    assert isinstance(field_error, ValueError)
