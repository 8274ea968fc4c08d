"""The FastAPI app of the rerank service: routes, auth, error mapping (no Ray here).

The Ray Serve deployment (:mod:`rerank.deployment`) builds this app around
itself; anything with the :class:`ScoringBackend` shape can serve it, which is
how the app is tested without Ray.

Status codes (the embedding service's rules): 400 malformed JSON or a body that
is no JSON object, 401 missing or wrong bearer token, 422 a bad field (missing
query, empty or non-string documents, too many documents or characters, another
model), 429 too much work pending (with ``Retry-After``), 500 a bug.
"""

from __future__ import annotations

import hmac
import logging
from typing import Any, Protocol

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from connector.observe.metrics import CountingMiddleware, ServiceMetrics
from connector.services.wire import error_reply
from rerank.api import (
    ErrorResponse,
    HealthBody,
    RerankResponse,
    check_request,
    parse_request,
    rank_results,
)
from rerank.errors import RerankServiceError, RerankUnauthorized
from rerank.models import ScoredPairs
from rerank.settings import RerankSettings

__all__ = ["ScoringBackend", "create_app"]

logger = logging.getLogger(__name__)


class ScoringBackend(Protocol):
    """What the app needs from whoever holds the model."""

    settings: RerankSettings

    async def score(self, query: str, documents: list[str]) -> ScoredPairs:
        """Scores in input order; raises ``RerankOverloaded`` when too much is pending."""
        ...

    def info(self) -> dict[str, Any]:
        """Model and limits, for ``GET /info``."""
        ...

    def metrics(self) -> dict[str, Any]:
        """Counters and timings, for ``GET /metrics``."""
        ...


def _check_auth(request: Request, settings: RerankSettings) -> None:
    if settings.api_key is None:
        return
    expected = f"Bearer {settings.api_key.get_secret_value()}"
    given = request.headers.get("authorization", "")
    if not hmac.compare_digest(given.encode(), expected.encode()):
        raise RerankUnauthorized("missing or wrong bearer token (send 'Authorization: Bearer <api key>')")


def create_app(backend: ScoringBackend) -> FastAPI:
    """The HTTP app around ``backend``: ``POST /v1/rerank``, ``GET /healthz``, ``GET /info``, ``GET /metrics``."""
    settings = backend.settings
    app = FastAPI(title="eshybrid rerank", version="1", responses={"4XX": {"model": ErrorResponse}})
    service_metrics = ServiceMetrics(
        "rerank",
        routes=("/v1/rerank", "/info", "/metrics", "/healthz"),
        queue_depth=lambda: float(backend.metrics().get("pending_pairs", 0)),
    )
    app.add_middleware(CountingMiddleware, metrics=service_metrics)
    app.state.service_metrics = service_metrics  # the deployment observes its batch sizes here

    @app.exception_handler(RerankServiceError)
    async def _service_error(request: Request, err: RerankServiceError) -> JSONResponse:
        if err.status >= 500:
            logger.error("rerank request failed: %s", err)
        reply = error_reply(err, retry_after_s=settings.retry_after_s)
        return JSONResponse(reply.body, status_code=reply.status, headers=reply.headers)

    @app.get("/healthz", response_model=HealthBody)
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/info")
    async def info(request: Request) -> dict[str, Any]:
        _check_auth(request, settings)
        return backend.info()

    @app.get("/metrics")
    async def metrics(request: Request) -> Any:
        """Counters as JSON, or this process's Prometheus series when the Accept header asks for them."""
        _check_auth(request, settings)
        prometheus = service_metrics.prometheus_response(request.headers.get("accept"))
        return prometheus if prometheus is not None else backend.metrics()

    @app.post("/v1/rerank", response_model=RerankResponse, response_model_exclude_none=True)
    async def rerank(request: Request) -> dict[str, Any]:
        _check_auth(request, settings)
        body = parse_request(await request.body())
        check_request(
            body,
            model_id=settings.reported_model_id,
            max_documents=settings.max_documents_per_request,
            max_query_chars=settings.max_query_chars,
            max_chars_per_document=settings.max_chars_per_document,
        )
        scored = await backend.score(body.query, body.documents)
        if len(scored.scores) != len(body.documents):  # output length must equal input length
            raise RerankServiceError(
                f"the model returned {len(scored.scores)} scores for {len(body.documents)} documents"
            )
        tokens = int(sum(scored.tokens))
        return {
            "results": rank_results(
                scored.scores, top_n=body.top_n, documents=body.documents if body.return_documents else None
            ),
            "model": settings.reported_model_id,
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }

    return app
