"""What the two model services (``embedding_service`` and ``rerank``) and their clients share: the wire contract.

Both answer an error as ``{"error": {"message", "type", "param", "code"}}`` under the same status rules (400 malformed
body, 401 bearer token, 422 a bad field, 429 with ``Retry-After``, 5xx a bug), ``GET /healthz`` as ``{"status": "ok"}``,
``GET /info`` as :class:`EmbeddingServiceInfo` / :class:`RerankServiceInfo` (the service builds its answer with the
model, the client parses it with the same model and ignores fields it does not know), and run as Ray Serve
deployments whose replicas are placed and throttled alike.

The services are deployables of their own; this module sits in the connector because both already depend on it
(``connector.errors``) and it needs no Ray, torch or FastAPI, so the base install stays light.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "HealthBody",
    "ErrorBody",
    "ErrorResponse",
    "EmbeddingServiceInfo",
    "vector_model_id",
    "RerankServiceInfo",
    "ErrorReply",
    "ServiceError",
    "ReplicaSettings",
    "niceness_field",
    "error_body",
    "error_type",
    "error_reply",
    "retry_after_header",
    "param_from_loc",
    "replica_options",
]


# The three bodies below appear in both services' OpenAPI documents under these class names; no docstrings,
# so the schemas stay as they were.
class HealthBody(BaseModel):
    status: Literal["ok"]


class ErrorBody(BaseModel):
    message: str
    type: str
    param: str | None = None
    code: str | None = None


class ErrorResponse(BaseModel):
    error: ErrorBody


# ``GET /info`` of the embedding service: what model produces the vectors, and the request limits. Frozen (a
# client caches it); unknown fields are ignored, so an older client still reads a newer service. No docstring:
# it would become the schema's description in the service's OpenAPI document.
class EmbeddingServiceInfo(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    model_id: str
    revision: str
    dims: int
    max_length: int
    pooling: str
    normalized: bool
    device: str
    dtype: str
    query_prefix: str
    document_prefix: str
    max_items_per_request: int
    max_chars_per_item: int
    # Backend and quantization: an int8 model's vectors are close to the fp32 ones, not equal, so the
    # quantization is part of the identity recorded per vector (``vector_model_id``). Older services did not
    # send these fields: they ran torch at full precision.
    backend: str = "torch"
    quantization: str = "none"
    # The layout: replicas of the deployment (fixed count; the autoscaling minimum) x threads in each.
    replicas: int | None = None
    threads_per_replica: int | None = None

    @property
    def vector_model_id(self) -> str:
        return vector_model_id(self.model_id, self.quantization)


def vector_model_id(model_id: str, quantization: str) -> str:
    """The model id recorded beside each vector: ``model_id``, plus ``+int8`` etc. for a quantized model.

    Full precision (torch fp32/bf16/fp16 and onnx fp32) keeps the plain id: those vectors agree to float
    rounding. A quantized variant gets its own id, so an incremental backfill re-embeds every document
    written by another variant instead of leaving the index a silent mix.
    """
    return model_id if quantization in ("", "none") else f"{model_id}+{quantization}"


# ``GET /info`` of the rerank service: the model, how it scores, and the request limits. The fields below
# ``dtype`` depend on the kind of model (cross-encoder or LLM) and are left out of the answer when unset.
class RerankServiceInfo(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    model_id: str
    revision: str | None
    kind: str
    max_length: int
    device: str
    dtype: str
    max_documents_per_request: int
    max_query_chars: int
    max_chars_per_document: int
    score: str | None = None
    max_query_share: float | None = None
    max_doc_tokens: int | None = None
    batch_size: int | None = None
    max_batch_pairs: int | None = None
    torch_threads: int | None = None
    # Backend (torch | onnx), quantization (none | int8) and replica count; absent from older services.
    backend: str | None = None
    quantization: str | None = None
    replicas: int | None = None
    num_labels: int | None = None
    template: str | None = None
    instruction: str | None = None
    yes_token: str | None = None
    no_token: str | None = None


class ServiceError(Protocol):
    """What :func:`error_reply` reads from a service's exception (both services' roots have it)."""

    status: int
    message: str


class ReplicaSettings(Protocol):
    """The settings fields :func:`replica_options` reads (both services' settings have them)."""

    @property
    def device(self) -> str: ...

    @property
    def num_cpus_per_replica(self) -> float: ...

    @property
    def num_gpus_per_replica(self) -> float: ...

    @property
    def max_ongoing_requests(self) -> int: ...

    @property
    def max_queued_requests(self) -> int: ...

    @property
    def retry_after_s(self) -> float: ...

    @property
    def niceness(self) -> int | None: ...


def niceness_field() -> Any:
    """The ``niceness`` setting every model service's settings declare (:class:`ReplicaSettings`)."""
    return Field(
        None,
        ge=0,
        le=19,
        description="Unix niceness of the replica processes (0-19; None: Ray's own, 15 for every worker); on a "
        "node shared with the search, 19 lets searches go first while a replica starts or a backfill runs.",
    )


@dataclass(frozen=True)
class ErrorReply:
    """An error answer, ready for ``JSONResponse(reply.body, status_code=reply.status, headers=reply.headers)``."""

    status: int
    body: dict[str, Any]
    headers: dict[str, str]


def error_body(message: str, *, type_: str, param: str | None = None, code: str | None = None) -> dict[str, Any]:
    """An OpenAI-style error body."""
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


def error_type(status: int) -> str:
    """The ``error.type`` for an HTTP status (OpenAI's names)."""
    if status >= 500:
        return "server_error"
    return {401: "authentication_error", 429: "rate_limit_error"}.get(status, "invalid_request_error")


def retry_after_header(retry_after_s: float) -> str:
    """The ``Retry-After`` value: whole seconds, rounded up (never sooner than asked), at least 1."""
    return str(max(1, math.ceil(retry_after_s)))


def error_reply(err: ServiceError, *, retry_after_s: float) -> ErrorReply:
    """The answer to a service exception: its status, the error body, and ``Retry-After`` / ``WWW-Authenticate``.

    Args:
        err: the exception; its ``field`` (if any) becomes ``param``, its ``retry_after_s`` (if any) the header.
        retry_after_s: the ``Retry-After`` of a 429 whose exception carries none.
    """
    status = err.status
    headers: dict[str, str] = {}
    if status == 429:
        headers["Retry-After"] = retry_after_header(getattr(err, "retry_after_s", retry_after_s))
    elif status == 401:
        headers["WWW-Authenticate"] = "Bearer"
    body = error_body(err.message, type_=error_type(status), param=getattr(err, "field", None))
    return ErrorReply(status, body, headers)


def param_from_loc(loc: Sequence[str | int], *, union_tags: Collection[str] = ()) -> str | None:
    """Turn a pydantic error location into a field name like ``documents[3]``.

    Drops the ``body`` root and ``union_tags``, the union member names pydantic inserts (``str``, ``list[str]``).
    """
    name = ""
    for part in loc:
        if part == "body" or part in union_tags:
            continue
        name += f"[{part}]" if isinstance(part, int) else (f".{part}" if name else str(part))
    return name or None


def replica_options(settings: ReplicaSettings, *, name: str, cluster_gpus: float) -> dict[str, Any]:
    """Ray Serve options both deployments share (pure); the caller adds the replica count or autoscaling.

    ``device=auto`` asks Ray for ``num_gpus`` when the cluster has GPUs, so the replica is placed
    on a GPU node and torch sees it; ``device=cpu`` never reserves one.
    """
    on_gpu = settings.device == "cuda" or (settings.device == "auto" and cluster_gpus > 0)
    actor_options: dict[str, Any] = {"num_cpus": settings.num_cpus_per_replica}
    if on_gpu:
        actor_options["num_gpus"] = settings.num_gpus_per_replica
    if settings.niceness is not None:  # the raylet starts the replica's worker process at this niceness
        actor_options["runtime_env"] = {"env_vars": {"RAY_worker_niceness": str(settings.niceness)}}
    return {
        "name": name,
        "ray_actor_options": actor_options,
        "max_ongoing_requests": settings.max_ongoing_requests,
        "max_queued_requests": settings.max_queued_requests,
        "backpressure_config": {"status_code": 429, "retry_after_s": settings.retry_after_s},
        "health_check_period_s": 10.0,
        "graceful_shutdown_timeout_s": 20.0,
    }
