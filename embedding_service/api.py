"""HTTP shapes of the embedding service (OpenAI-compatible) and the pure helpers around them.

No Ray and no torch here, so the request rules are unit-testable on their own.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping, Sequence
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from connector.services.wire import EmbeddingServiceInfo, ErrorBody, ErrorResponse, HealthBody, error_body
from connector.services.wire import param_from_loc as _param_from_loc
from embedding_service.errors import InvalidInputError

__all__ = [
    "InputType",
    "EmbeddingRequest",
    "EmbeddingItem",
    "EmbeddingResponse",
    "TokenizeItem",
    "TokenizeRequest",
    "TokenizeResponse",
    "Usage",
    "EmbeddingServiceInfo",
    "ErrorBody",
    "ErrorResponse",
    "HealthBody",
    "check_request",
    "error_body",
    "param_from_loc",
    "render_embeddings",
]

InputType = Literal["query", "document"]

# The member names pydantic puts in an error location of the ``input: str | list[str]`` union.
_INPUT_UNION_TAGS = ("str", "list[str]")


class EmbeddingRequest(BaseModel):
    """``POST /v1/embeddings`` body (OpenAI shape plus ``input_type``)."""

    model_config = ConfigDict(extra="forbid")

    input: str | Annotated[list[str], Field(min_length=1)] = Field(
        description="One text or a non-empty list of texts (limits on items and characters: see GET /info)."
    )
    model: str | None = Field(None, description="Must name the served model when given.")
    input_type: InputType = Field("document", description="Selects the query or the document prefix.")
    encoding_format: Literal["float", "base64"] = Field("float", description="base64: little-endian float32.")
    dimensions: int | None = Field(None, ge=1, description="Must equal the model's dims when given.")
    user: str | None = Field(None, description="Accepted for OpenAI compatibility; ignored.")


class TokenizeRequest(BaseModel):
    """``POST /v1/tokenize`` body: count tokens as the model sees them (for cutting passages)."""

    model_config = ConfigDict(extra="forbid")

    input: Annotated[list[str], Field(min_length=1)] = Field(description="Texts (same limits as /v1/embeddings).")
    input_type: InputType = Field("document", description="Selects the query or the document prefix.")


class TokenizeItem(BaseModel):
    index: int
    tokens: int = Field(description="Tokens the model would read untruncated: prefix and special tokens included.")
    offsets: list[tuple[int, int]] = Field(description="Character spans in the text of its own tokens.")


class TokenizeResponse(BaseModel):
    object: Literal["list"] = "list"
    data: list[TokenizeItem]
    max_length: int


class EmbeddingItem(BaseModel):
    object: Literal["embedding"] = "embedding"
    index: int
    embedding: list[float] | str


class Usage(BaseModel):
    prompt_tokens: int
    total_tokens: int


class EmbeddingResponse(BaseModel):
    object: Literal["list"] = "list"
    data: list[EmbeddingItem]
    model: str
    usage: Usage


def param_from_loc(loc: Sequence[str | int]) -> str | None:
    """Turn a pydantic error location into a field name like ``input[3]``.

    Drops the ``body`` root and the union member tags pydantic inserts (``str``, ``list[str]``).
    """
    return _param_from_loc(loc, union_tags=_INPUT_UNION_TAGS)


def check_request(
    request: EmbeddingRequest,
    *,
    model_id: str,
    dims: int,
    max_items: int,
    max_chars: int,
) -> list[str]:
    """Apply the limits and model checks the schema cannot express; return the texts as a list.

    Raises:
        InvalidInputError: with ``field`` naming the offending field (``input``, ``input[7]``,
            ``model``, ``dimensions``).
    """
    texts = [request.input] if isinstance(request.input, str) else list(request.input)
    if len(texts) > max_items:
        raise InvalidInputError(
            f"input has {len(texts)} items; at most {max_items} per request, split it", field="input"
        )
    for i, text in enumerate(texts):
        if len(text) > max_chars:
            raise InvalidInputError(f"input[{i}] has {len(text)} characters; at most {max_chars}", field=f"input[{i}]")
    if request.model is not None and request.model not in (model_id, model_id.rsplit("/", 1)[-1]):
        raise InvalidInputError(
            f"model {request.model!r} is not served here; this service serves {model_id!r}", field="model"
        )
    if request.dimensions is not None and request.dimensions != dims:
        raise InvalidInputError(
            f"dimensions {request.dimensions} is not supported; the model has {dims}", field="dimensions"
        )
    return texts


def render_embeddings(
    vectors: np.ndarray,
    *,
    model_id: str,
    token_counts: Sequence[int],
    encoding_format: Literal["float", "base64"],
) -> bytes:
    """Serialise the response body (JSON bytes) for ``vectors`` in input order."""
    data: list[Mapping[str, Any]] = []
    for i, vector in enumerate(vectors):
        if encoding_format == "base64":
            embedding: Any = base64.b64encode(vector.astype("<f4", copy=False).tobytes()).decode("ascii")
        else:
            embedding = vector.tolist()
        data.append({"object": "embedding", "index": i, "embedding": embedding})
    tokens = int(sum(token_counts))
    body = {
        "object": "list",
        "data": data,
        "model": model_id,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }
    return json.dumps(body, separators=(",", ":")).encode()
