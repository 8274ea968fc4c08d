"""HTTP shapes of the rerank service (the Cohere / TEI / Infinity shape) and pure helpers.

No Ray and no torch here, so the request rules are unit-testable on their own.

``POST /v1/rerank`` ``{"query": str, "documents": [str, ...], "top_n"?: int, "return_documents"?: bool,
"model"?: str}`` -> ``{"results": [{"index": i, "relevance_score": s}, ...], "model": ..., "usage": {...}}``,
results sorted by score (highest first, ties by index).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, StrictStr, ValidationError

from connector.services.wire import ErrorBody, ErrorResponse, HealthBody, error_body, param_from_loc
from rerank.errors import RerankInputError

__all__ = [
    "RerankRequest",
    "RerankResult",
    "RerankResponse",
    "RerankUsage",
    "HealthBody",
    "ErrorBody",
    "ErrorResponse",
    "MalformedRequestError",
    "parse_request",
    "check_request",
    "rank_results",
    "error_body",
    "param_from_loc",
]


class MalformedRequestError(RerankInputError):
    """The body is not a JSON object (HTTP 400)."""

    status: int = 400


class RerankRequest(BaseModel):
    """``POST /v1/rerank`` body."""

    model_config = ConfigDict(extra="forbid")

    query: StrictStr = Field(min_length=1, description="the search text")
    documents: list[StrictStr] = Field(min_length=1, description="texts to score against the query")
    top_n: StrictInt | None = Field(default=None, ge=1, description="return only the n best (default: all)")
    return_documents: StrictBool = Field(default=False, description="echo each document's text in its result")
    model: StrictStr | None = Field(default=None, description="must name the served model when given")


class RerankDocument(BaseModel):
    text: str


class RerankResult(BaseModel):
    index: int = Field(description="position of the document in the request")
    relevance_score: float
    document: RerankDocument | None = None


class RerankUsage(BaseModel):
    prompt_tokens: int
    total_tokens: int


class RerankResponse(BaseModel):
    results: list[RerankResult]
    model: str
    usage: RerankUsage


def parse_request(body: bytes) -> RerankRequest:
    """Decode and validate a request body.

    Raises:
        MalformedRequestError: not JSON, or not a JSON object (400).
        RerankInputError: the schema does not match (422); ``field`` names the first bad field.
    """
    try:
        data = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise MalformedRequestError(f"the body is not valid JSON: {e}", field=None) from e
    if not isinstance(data, dict):
        raise MalformedRequestError("the body must be a JSON object", field=None)
    try:
        return RerankRequest.model_validate(data)
    except ValidationError as e:
        first = e.errors()[0]
        field = param_from_loc(first["loc"])
        raise RerankInputError(f"{field or 'body'}: {first['msg']}", field=field) from e


def check_request(
    request: RerankRequest,
    *,
    model_id: str,
    max_documents: int,
    max_query_chars: int,
    max_chars_per_document: int,
) -> None:
    """Apply the limits and model check the schema cannot express.

    Raises:
        RerankInputError: too many documents or characters, or ``model`` names another model (422).
    """
    if len(request.documents) > max_documents:
        raise RerankInputError(
            f"documents has {len(request.documents)} items; at most {max_documents} per request, split it",
            field="documents",
        )
    if len(request.query) > max_query_chars:
        raise RerankInputError(f"query has {len(request.query)} characters; at most {max_query_chars}", field="query")
    for i, document in enumerate(request.documents):
        if len(document) > max_chars_per_document:
            raise RerankInputError(
                f"documents[{i}] has {len(document)} characters; at most {max_chars_per_document}",
                field=f"documents[{i}]",
            )
    if request.model is not None and request.model not in (model_id, model_id.rstrip("/").rsplit("/", 1)[-1]):
        raise RerankInputError(
            f"model {request.model!r} is not served here; this service serves {model_id!r}", field="model"
        )


def rank_results(
    scores: Sequence[float],
    *,
    top_n: int | None = None,
    documents: Sequence[str] | None = None,
) -> list[dict[str, Any]]:
    """Results sorted by score, highest first (ties: lower index first), cut to ``top_n``."""
    order = sorted(range(len(scores)), key=lambda i: (-scores[i], i))
    if top_n is not None:
        order = order[:top_n]
    results: list[dict[str, Any]] = []
    for i in order:
        item: dict[str, Any] = {"index": i, "relevance_score": float(scores[i])}
        if documents is not None:
            item["document"] = {"text": documents[i]}
        results.append(item)
    return results
