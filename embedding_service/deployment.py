"""The Ray Serve application: FastAPI ingress + batched model in one replica.

Request path: the ingress validates and admits a request (a bounded count of pending texts,
else 429), puts each text into a ``@serve.batch`` queue (queries and documents have their own),
each batch is tokenized, cut into length-sorted forward passes under a token budget and run on
the replica's forward thread (queries first), and the vectors go back in input order.
Ray Serve's own ``max_queued_requests`` backpressure is answered with 429 + ``Retry-After`` too.
The lean path: a request of one short query while no other query is in flight skips the batch queue and the
tokenizer thread (tokenized on the loop, its forward pass queued first), so a search's query waits for no batch.
"""

# No ``from __future__ import annotations`` here: FastAPI must see the route annotations as real
# types after Ray Serve re-wraps the methods, or /openapi.json cannot be generated.
import asyncio
import functools
import logging
import os
import secrets
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict
from typing import Annotated, Any

import numpy as np
from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from ray import serve
from ray.serve.deployment import Application

from connector.observe.metrics import CountingMiddleware, ServiceMetrics
from connector.services.wire import error_reply
from embedding_service._metrics import ReplicaCounters, ReplicaMetrics
from embedding_service._scheduler import PRIORITY_DOCUMENT, PRIORITY_QUERY, ForwardScheduler
from embedding_service.api import (
    EmbeddingRequest,
    EmbeddingResponse,
    EmbeddingServiceInfo,
    ErrorResponse,
    HealthBody,
    InputType,
    TokenizeRequest,
    TokenizeResponse,
    check_request,
    error_body,
    param_from_loc,
    render_embeddings,
)
from embedding_service.errors import AuthError, EmbeddingServiceError, InvalidInputError, OverloadedError
from embedding_service.layout import default_replicas, deployment_options
from embedding_service.settings import DEFAULT_MAX_BATCH_TOKENS, EmbeddingServiceSettings

__all__ = [
    "LEAN_QUERY_MAX_CHARS",
    "EmbeddingDeployment",
    "build_app",
    "default_replicas",
    "deployment_options",
    "takes_lean_path",
]

logger = logging.getLogger(__name__)

_api = FastAPI(
    title="eshybrid embedding service",
    version="1",
    description="OpenAI-compatible text embeddings with query/document prefixes, batched on Ray Serve.",
)
# Prometheus series of this replica's process (GET /metrics with Accept: text/plain or openmetrics).
_service_metrics = ServiceMetrics(
    "embedding", routes=("/v1/embeddings", "/v1/tokenize", "/info", "/metrics", "/healthz")
)
_api.add_middleware(CountingMiddleware, metrics=_service_metrics)
_bearer = HTTPBearer(auto_error=False, description="Required when the service has an api_key.")
_ERRORS: dict[int | str, dict[str, Any]] = {code: {"model": ErrorResponse} for code in (400, 401, 422, 429, 503)}


@_api.exception_handler(RequestValidationError)
async def _on_validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
    errors = exc.errors()
    # Report the most specific location: for a list with a bad item that is ``input[3]``,
    # not the ``str`` branch of the union.
    first = max(
        errors, key=lambda e: len(e.get("loc", ())), default={"loc": (), "msg": "invalid request", "type": "invalid"}
    )
    # Malformed JSON, or a body that is no JSON object, is a 400 like OpenAI's; a bad field is a 422.
    malformed = next((e for e in errors if e.get("type") == "json_invalid"), None)
    if malformed is not None:
        position = malformed.get("loc", ("body", "?"))[-1]
        body = error_body(
            f"body is not valid JSON (near character {position}): {malformed.get('msg')}",
            type_="invalid_request_error",
            code="json_invalid",
        )
        return JSONResponse(body, status_code=400)
    if any(tuple(e.get("loc", ())) == ("body",) for e in errors):
        body = error_body(
            "the body must be a JSON object sent with Content-Type: application/json",
            type_="invalid_request_error",
            code=str(first.get("type")),
        )
        return JSONResponse(body, status_code=400)
    param = param_from_loc(first.get("loc", ()))
    body = error_body(
        f"{param or 'body'}: {first.get('msg')}",
        type_="invalid_request_error",
        param=param,
        code=str(first.get("type")),
    )
    body["detail"] = [
        {"loc": [str(p) for p in e.get("loc", ())], "msg": str(e.get("msg")), "type": str(e.get("type"))}
        for e in errors
    ]
    return JSONResponse(body, status_code=422)


@_api.exception_handler(EmbeddingServiceError)
async def _on_service_error(_: Request, exc: EmbeddingServiceError) -> JSONResponse:
    reply = error_reply(exc, retry_after_s=1.0)
    return JSONResponse(reply.body, status_code=reply.status, headers=reply.headers)


class _DropBatchSizeWarning(logging.Filter):
    """Ray warns when max_batch_size exceeds max_ongoing_requests, assuming one item per request.
    Here a batch item is one text and a request carries many, so the warning does not apply."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "is larger than `max_ongoing_requests`" not in record.getMessage()


# Defined above the class: serve.ingress copies the class when it is defined, with the globals that exist then.
# A query longer than this is tokenized on the tokenizer thread (the batch path), not on the event loop.
LEAN_QUERY_MAX_CHARS = 512


def takes_lean_path(input_type: InputType, texts: list[str], *, queries_in_flight: int) -> bool:
    """Whether a request skips the query batch queue: one short query while no other query is in flight.

    A lone query gains nothing from waiting up to ``batch_wait_timeout_s`` for company; concurrent queries still
    share forward passes through the batch queue (more throughput under load).
    """
    return (
        input_type == "query" and len(texts) == 1 and queries_in_flight == 0 and len(texts[0]) <= LEAN_QUERY_MAX_CHARS
    )


@serve.ingress(_api)
class EmbeddingDeployment:
    """One replica: the model, its batch queues and the HTTP routes.

    Python callers use :meth:`embed` and :meth:`info` through a deployment handle.
    """

    def __init__(self, settings: EmbeddingServiceSettings) -> None:
        # Process-wide library switches for this replica's process, set before transformers loads.
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
        if settings.offline:
            os.environ["HF_HUB_OFFLINE"] = "1"
        import torch

        from embedding_service.loading import load_embedder
        from embedding_service.model_spec import build_model_spec

        self._settings = settings
        logging.getLogger("ray.serve").addFilter(_DropBatchSizeWarning())
        threads = settings.torch_threads or max(1, int(settings.num_cpus_per_replica))
        # A replica with num_cpus=1 gets OMP_NUM_THREADS=1; say what we mean explicitly, in every thread.
        torch.set_num_threads(threads)
        self._threads = threads
        self._embedder = load_embedder(build_model_spec(settings), settings, threads=threads)
        self._max_batch_tokens = settings.max_batch_tokens or DEFAULT_MAX_BATCH_TOKENS[self._embedder.device]
        self._scheduler = ForwardScheduler(thread_initializer=functools.partial(torch.set_num_threads, threads))
        self._tokenizer_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="embed-tokenize")
        self._api_key = settings.api_key.get_secret_value() if settings.api_key else None
        self._pending_texts = 0
        self._queries_in_flight = 0
        self._counters = ReplicaCounters()
        self._metrics = ReplicaMetrics()
        _service_metrics.track_queue(lambda: self._pending_texts)
        self._document_batch = serve.batch(
            max_batch_size=settings.max_batch_size,
            batch_wait_timeout_s=settings.batch_wait_timeout_s,
            max_concurrent_batches=settings.max_concurrent_batches,
        )(self._embed_document_batch)
        self._query_batch = serve.batch(
            max_batch_size=settings.max_query_batch_size,
            batch_wait_timeout_s=min(settings.batch_wait_timeout_s, 0.002),
            max_concurrent_batches=2,
        )(self._embed_query_batch)
        self._info = self._build_info()
        logger.info(
            "embedding replica ready: %s/%s, layout %s replica(s) x %s thread(s): %s",
            self._embedder.backend,
            self._embedder.quantization,
            self._info["replicas"],
            threads,
            self._info,
        )

    def _build_info(self) -> dict[str, Any]:
        spec, s = self._embedder.spec, self._settings
        return EmbeddingServiceInfo(
            model_id=spec.model_id,
            revision=spec.revision,
            dims=self._embedder.dims,
            max_length=self._embedder.max_length,
            pooling=spec.pooling,
            normalized=spec.normalized,
            device=self._embedder.device,
            dtype=self._embedder.dtype,
            backend=self._embedder.backend,
            quantization=self._embedder.quantization,
            replicas=None if s.autoscaling else s.replicas,
            threads_per_replica=self._threads,
            query_prefix=spec.query_prefix,
            document_prefix=spec.document_prefix,
            max_items_per_request=s.max_items_per_request,
            max_chars_per_item=s.max_chars_per_item,
        ).model_dump()

    # ----- Python (deployment handle) API -----

    async def embed(self, texts: list[str], input_type: InputType = "document") -> np.ndarray:
        """Embed ``texts``; returns float32 ``[len(texts), dims]`` in input order.

        Raises:
            InvalidInputError: empty list, a non-string item, or over the limits.
            OverloadedError: too many texts pending in this replica.
        """
        if not isinstance(texts, list) or not texts:
            raise InvalidInputError("texts must be a non-empty list of strings", field="input")
        for i, text in enumerate(texts):
            if not isinstance(text, str):
                raise InvalidInputError(f"input[{i}] must be a string", field=f"input[{i}]")
        request = EmbeddingRequest(input=texts, input_type=input_type)
        check_request(
            request,
            model_id=self._info["model_id"],
            dims=self._info["dims"],
            max_items=self._settings.max_items_per_request,
            max_chars=self._settings.max_chars_per_item,
        )
        vectors, _ = await self._embed(texts, input_type)
        return vectors

    async def info(self) -> dict[str, Any]:
        """The ``GET /info`` body."""
        return dict(self._info)

    # ----- HTTP routes -----

    @_api.get("/healthz", response_model=HealthBody)
    async def healthz(self) -> dict[str, str]:
        return {"status": "ok"}

    @_api.get("/info", response_model=EmbeddingServiceInfo, responses=_ERRORS)
    async def http_info(
        self, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)] = None
    ) -> dict[str, Any]:
        self._check_auth(credentials)
        return dict(self._info)

    @_api.get("/metrics", responses=_ERRORS)
    async def http_metrics(
        self, request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)] = None
    ) -> Any:
        """This replica's counters as JSON, or its Prometheus series when the Accept header asks for them."""
        self._check_auth(credentials)
        if (prometheus := _service_metrics.prometheus_response(request.headers.get("accept"))) is not None:
            return prometheus
        body: dict[str, Any] = asdict(self._counters)
        body["pending_texts"] = self._pending_texts
        body["queued_forward_passes"] = self._scheduler.waiting
        body["forward_busy_s"] = round(self._scheduler.busy_s, 6)
        body["replica"] = serve.get_replica_context().replica_tag
        return body

    @_api.post("/v1/embeddings", response_model=EmbeddingResponse, responses=_ERRORS)
    async def embeddings(
        self,
        body: EmbeddingRequest,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)] = None,
    ) -> Response:
        self._check_auth(credentials)
        texts = check_request(
            body,
            model_id=self._info["model_id"],
            dims=self._info["dims"],
            max_items=self._settings.max_items_per_request,
            max_chars=self._settings.max_chars_per_item,
        )
        vectors, counts = await self._embed(texts, body.input_type)
        content = render_embeddings(
            vectors, model_id=self._info["model_id"], token_counts=counts, encoding_format=body.encoding_format
        )
        return Response(content=content, media_type="application/json")

    @_api.post("/v1/tokenize", response_model=TokenizeResponse, responses=_ERRORS)
    async def tokenize(
        self,
        body: TokenizeRequest,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)] = None,
    ) -> dict[str, Any]:
        """Token counts and spans by the model's own tokenizer, untruncated (passage cutting, issue 17)."""
        self._check_auth(credentials)
        texts = check_request(
            EmbeddingRequest(input=body.input),
            model_id=self._info["model_id"],
            dims=self._info["dims"],
            max_items=self._settings.max_items_per_request,
            max_chars=self._settings.max_chars_per_item,
        )
        spec = self._embedder.spec
        prefix = spec.query_prefix if body.input_type == "query" else spec.document_prefix
        rows = await asyncio.get_running_loop().run_in_executor(
            self._tokenizer_thread, functools.partial(self._embedder.token_spans, texts, prefix=prefix)
        )
        data = [{"index": i, "tokens": n, "offsets": spans} for i, (n, spans) in enumerate(rows)]
        return {"object": "list", "data": data, "max_length": self._info["max_length"]}

    def check_health(self) -> None:
        """Ray Serve's periodic health check: the forward thread must still be usable."""
        if self._embedder is None:
            raise RuntimeError("model not loaded")

    # ----- internals -----

    def _check_auth(self, credentials: HTTPAuthorizationCredentials | None) -> None:
        if self._api_key is None:
            return
        given = credentials.credentials if credentials is not None else ""
        if not secrets.compare_digest(given.encode(), self._api_key.encode()):
            raise AuthError("missing or wrong bearer token (Authorization: Bearer <api_key>)")

    def _admit(self, count: int) -> None:
        # Refuse early instead of queueing work nobody will wait for; a request larger than the
        # whole budget still gets in when nothing else is pending, so it cannot starve.
        limit = self._settings.max_pending_texts
        if self._pending_texts and self._pending_texts + count > limit:
            self._counters.rejected_requests += 1
            self._metrics.rejected.inc()
            raise OverloadedError(
                f"{self._pending_texts} texts are pending (limit {limit}); retry later",
                retry_after_s=self._settings.retry_after_s,
                pending_texts=self._pending_texts,
            )
        self._pending_texts += count
        self._metrics.pending_texts.set(self._pending_texts)

    async def _embed(self, texts: list[str], input_type: InputType) -> tuple[np.ndarray, list[int]]:
        self._admit(len(texts))
        queries = len(texts) if input_type == "query" else 0
        lean = self._settings.lean_single_query and takes_lean_path(
            input_type, texts, queries_in_flight=self._queries_in_flight
        )
        self._queries_in_flight += queries
        try:
            self._counters.requests += 1
            spec = self._embedder.spec
            prefix = spec.query_prefix if input_type == "query" else spec.document_prefix
            if lean:
                results = [await self._embed_lean_query(prefix + texts[0])]
            else:
                batch = self._query_batch if input_type == "query" else self._document_batch
                results = await asyncio.gather(*(batch(prefix + text) for text in texts))
        finally:
            self._queries_in_flight -= queries
            self._pending_texts -= len(texts)
            self._metrics.pending_texts.set(self._pending_texts)
        if len(results) != len(texts):  # the contract: one vector per input, in order
            raise RuntimeError(f"got {len(results)} vectors for {len(texts)} texts")
        return np.stack([vector for vector, _ in results]), [count for _, count in results]

    async def _embed_lean_query(self, text: str) -> tuple[np.ndarray, int]:
        """One query alone: tokenized here (a few dozen microseconds), its forward pass queued first on the
        forward thread; no batch wait and no tokenizer-thread hop (issue 24: a search pays this per query)."""
        row = self._embedder.tokenize_query(text)
        if row is None:  # no fast tokenizer to copy: the batch path tokenizes on its thread
            return await self._query_batch(text)  # type: ignore[no-any-return]
        output, seconds = await self._scheduler.run(
            functools.partial(self._timed_forward, [row]), priority=PRIORITY_QUERY
        )
        self._counters.lean_queries += 1
        self._record_batch([len(row)], [[0]], inference_s=seconds)
        return output[0], len(row)

    async def _embed_query_batch(self, texts: list[str]) -> list[tuple[np.ndarray, int]]:
        return await self._run_batch(texts, priority=PRIORITY_QUERY)

    async def _embed_document_batch(self, texts: list[str]) -> list[tuple[np.ndarray, int]]:
        return await self._run_batch(texts, priority=PRIORITY_DOCUMENT)

    async def _run_batch(self, texts: list[str], *, priority: int) -> list[tuple[np.ndarray, int]]:
        from embedding_service.model import plan_batches

        # Off the event loop (a batch of long texts takes a while), on one thread: a fast tokenizer
        # must not be used from two threads at once.
        rows = await asyncio.get_running_loop().run_in_executor(self._tokenizer_thread, self._embedder.tokenize, texts)
        lengths = [len(r) for r in rows]
        groups = plan_batches(lengths, max_rows=len(rows), max_batch_tokens=self._max_batch_tokens)
        outputs = await asyncio.gather(
            *(
                self._scheduler.run(functools.partial(self._timed_forward, [rows[i] for i in group]), priority=priority)
                for group in groups
            )
        )
        vectors = np.empty((len(rows), self._embedder.dims), dtype=np.float32)
        for group, (output, _) in zip(groups, outputs, strict=True):
            vectors[group] = output
        self._record_batch(lengths, groups, inference_s=sum(seconds for _, seconds in outputs))
        return [(vectors[i], lengths[i]) for i in range(len(rows))]

    def _timed_forward(self, rows: list[list[int]]) -> tuple[np.ndarray, float]:
        # Runs on the forward thread; the time is this pass alone, not other batches' passes.
        started = time.perf_counter()
        return self._embedder.forward(rows), time.perf_counter() - started

    def _record_batch(self, lengths: list[int], groups: list[list[int]], *, inference_s: float) -> None:
        c = self._counters
        tokens = sum(lengths)
        c.batches += 1
        c.forward_passes += len(groups)
        c.texts += len(lengths)
        c.tokens += tokens
        c.padded_tokens += sum(len(g) * max(lengths[i] for i in g) for g in groups)
        c.inference_s += inference_s
        c.last_batch_size, c.last_batch_tokens = len(lengths), tokens
        c.max_batch_size_seen = max(c.max_batch_size_seen, len(lengths))
        m = self._metrics
        m.batch_size.observe(len(lengths))
        _service_metrics.observe_batch(len(lengths))
        m.batch_tokens.observe(tokens)
        m.inference_ms.observe(inference_s * 1000.0)
        m.texts.inc(len(lengths))


def build_app(
    settings: EmbeddingServiceSettings | None = None,
    *,
    cluster_gpus: float | None = None,
    cluster_cpus: float | None = None,
) -> Application:
    """The embedding application, ready for ``serve.run(app, name=..., route_prefix=...)``.

    Args:
        settings: defaults to ``EmbeddingServiceSettings()`` (env ``ESHYBRID_EMBED_*``).
        cluster_gpus / cluster_cpus: GPUs / CPUs the default layout divides; default: asked from Ray when it
            is initialised.
    """
    import ray

    settings = settings or EmbeddingServiceSettings()
    resources = ray.cluster_resources() if ray.is_initialized() else {}
    if cluster_gpus is None:
        cluster_gpus = float(resources.get("GPU", 0))
    if cluster_cpus is None:
        cluster_cpus = float(resources.get("CPU", 1))
    options: Mapping[str, Any] = deployment_options(settings, cluster_gpus=cluster_gpus, cluster_cpus=cluster_cpus)
    if settings.replicas is None and "num_replicas" in options:
        # The replicas learn their layout from the settings (/info and the startup line report it).
        settings = settings.model_copy(update={"replicas": options["num_replicas"]})
    # serve.deployment(**options)(cls), not serve.deployment(cls).options(...): the same Deployment, and the
    # overload Ray's annotations describe (called with a class it is typed as returning the decorator).
    return serve.deployment(**options)(EmbeddingDeployment).bind(settings)
