"""The search endpoint for non-Python apps: a Ray Serve deployment with a FastAPI ingress.

``POST /search`` takes the fields of :meth:`HybridSearch.search` (see
:class:`~connector.search.settings.SearchRequestBody`; an example image as base64 in ``image``, searched when the
service has an image signal, ``image_url`` in its settings) and answers the
same :class:`~connector.search.models.SearchResponse` JSON, explanations
included, with its ``query_id``. ``mode: "hybrid+rerank"`` reranks the fused top ``rerank_top_k`` with the
rerank service (``rerank_url`` in its settings). A helper that fails or runs over its budget (the embedder, the
image embedder, the profile read, the reranker) never fails the search: the answer is 200 with the lexical result
flagged ``vector_fallback``, or the fused order flagged ``rerank_fallback``. Bad requests get 400 with the
offending field named (``{"error": {"type", "message", "field"}}``), a body over ``max_body_bytes`` 413; a cluster
that rejects the search (429) or cannot answer 503 ``cluster_unavailable`` with ``Retry-After``
(:mod:`connector.search.http_errors`).

With ``ubi`` on (``--ubi``), a search that names a ``client_id`` queues its UBI query record, and
``POST /events`` takes the shoppers' event records (:mod:`connector.ubi.intake`: body and record caps,
per-record validation, rate limits per ``client_id`` and address, 429 when the queue is full);
``GET /events/stats`` counts them. A body naming the service's ``experiment`` gets the interleaved
page (or the client's A/B arm) and ``experiment`` (arm, ``hit_arms``) in the answer.
``/ui`` is the relevance workbench when the app is built with its routes (``build_search_app(ui=...)``;
``eshybrid serve search`` does, ``connector.workbench`` being a layer above this one).

This module imports Ray and FastAPI: only the CLI (``eshybrid serve search``)
and tests import it; ``connector`` never does at import time.
"""

# No ``from __future__ import annotations``: FastAPI must see the route annotations as real types.
import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from ray import serve
from ray.serve.deployment import Application
from ray.serve.handle import DeploymentHandle

from connector.errors import EmbeddingError, EmbeddingOverloaded, EshybridError, ModelMismatchError, SearchRequestError
from connector.observe.metrics import CountingMiddleware, ServiceMetrics, default_search_metrics
from connector.search.console import render_response
from connector.search.experiment import experiment_search
from connector.search.http_errors import http_error
from connector.search.hybrid import HybridSearch
from connector.search.images import ImageSignal
from connector.search.models import LexicalForm
from connector.search.query_vectors import Embedder
from connector.search.rerank import RerankConfig
from connector.search.settings import SearchRequestBody, SearchServiceSettings
from connector.services.embedding import EmbeddingClient
from connector.ubi.intake import EventIntake
from connector.ubi.logger import UbiLogger

__all__ = ["SearchDeployment", "build_search_app", "HandleEmbedder", "UiFactory", "UiRoutes"]

logger = logging.getLogger(__name__)

_api = FastAPI(
    title="eshybrid search", version="1", description="Hybrid (BM25 + kNN) search with per-hit score explanations."
)


# GET /metrics: this replica's requests by route and status, beside the search series.
_service_metrics = ServiceMetrics("search", routes=("/search", "/events", "/events/stats", "/healthz", "/metrics"))
_api.add_middleware(CountingMiddleware, metrics=_service_metrics)


class _SearchBodyLimit:
    """``POST .../search`` bodies over ``max_bytes`` get 413 before anything parses them (a huge body must not
    cost the replica a JSON parse and a validation of megabytes); ``max_bytes`` is set by the replica."""

    max_bytes = SearchServiceSettings.model_fields["max_body_bytes"].default

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or not scope["path"].endswith("/search"):
            await self.app(scope, receive, send)
            return
        limit = type(self).max_bytes
        declared = dict(scope.get("headers") or ()).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > limit:
            await self._too_large(scope, receive, send, limit)
            return
        messages, size = [], 0
        while True:  # buffered, then replayed: a chunked body is capped as it arrives
            message = await receive()
            messages.append(message)
            size += len(message.get("body", b""))
            if size > limit:
                await self._too_large(scope, receive, send, limit)
                return
            if message["type"] != "http.request" or not message.get("more_body"):
                break
        replay = iter(messages)

        async def replayed() -> Any:
            return next(replay, None) or await receive()

        await self.app(scope, replayed, send)

    @staticmethod
    async def _too_large(scope: Any, receive: Any, send: Any, limit: int) -> None:
        answer = _error(413, "too_large", f"the body is over {limit} bytes; send a smaller image or text", "body")
        await answer(scope, receive, send)


_api.add_middleware(_SearchBodyLimit)


def _error(status: int, type_: str, message: str, field: str | None = None) -> JSONResponse:
    return JSONResponse({"error": {"type": type_, "message": message, "field": field}}, status_code=status)


def _field_of(loc: Sequence[Any]) -> str:
    parts = [str(p) for p in loc if p != "body"]
    out = ""
    for part in parts:
        out += f"[{part}]" if part.isdigit() else (f".{part}" if out else part)
    return out or "body"


@_api.exception_handler(RequestValidationError)
async def _on_validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
    errors = exc.errors()
    first = max(errors, key=lambda e: len(e.get("loc", ())), default={"loc": (), "msg": "invalid request"})
    field = _field_of(first.get("loc", ()))
    return _error(400, "invalid_request", f"{field}: {first.get('msg')}", field)


@_api.exception_handler(EshybridError)
async def _on_eshybrid_error(_: Request, exc: EshybridError) -> JSONResponse:
    answer = http_error(exc)
    return JSONResponse(answer.body(), status_code=answer.status, headers=answer.headers())


class HandleEmbedder:
    """Query embedding through the embedding deployment's handle (``embed(texts, input_type)``).

    Called from FastAPI's thread pool (sync endpoint), where blocking on ``.result()`` is allowed.
    """

    def __init__(self, handle: DeploymentHandle[Any], *, timeout_s: float = 10.0) -> None:
        self._handle = handle
        self._timeout_s = timeout_s
        self._info: dict[str, Any] | None = None

    def embed_query(self, text: str) -> list[float]:
        try:
            vectors = self._handle.embed.remote([text], "query").result(timeout_s=self._timeout_s)
        except Exception as e:  # noqa: BLE001 - Ray wraps replica errors; say which side failed
            if type(e).__name__ in ("OverloadedError", "BackPressureError"):
                raise EmbeddingOverloaded(f"the embedding deployment is overloaded: {e}") from e
            raise EmbeddingError(f"the embedding deployment failed: {type(e).__name__}: {e}") from e
        return [float(v) for v in vectors[0]]

    def check_compatible(self, index_meta_vector_field: Mapping[str, Any]) -> None:
        """Raise ``ModelMismatchError`` when the deployment's model or dims differ from the index ``_meta``."""
        if self._info is None:
            self._info = dict(self._handle.info.remote().result(timeout_s=self._timeout_s))
        diffs = [
            f"{key}: index has {index_meta_vector_field[key]!r}, service has {self._info.get(key)!r}"
            for key in ("model_id", "dims")
            if key in index_meta_vector_field and index_meta_vector_field[key] != self._info.get(key)
        ]
        if diffs:
            raise ModelMismatchError(
                "embedding deployment does not match the index: " + "; ".join(diffs),
                expected=dict(index_meta_vector_field),
                actual=self._info,
            )


class UiRoutes(Protocol):
    """Routes under ``/ui`` in plain types (``connector.workbench.Workbench`` is one)."""

    def handle_http(
        self,
        method: str,
        path: str,
        query: str,
        headers: Mapping[str, str],
        body: bytes,
        client_host: str | None,
        root_path: str = "",
    ) -> tuple[int, list[tuple[str, str]], bytes]: ...


# Called once per replica, on the first /ui request, as ``ui(cluster, index, make_search=...)``, where
# ``make_search(lexical_form)`` is the replica's HybridSearch of the default index with that lexical form.
UiFactory = Callable[..., UiRoutes]


@serve.ingress(_api)
class SearchDeployment:
    """One replica: a cluster client, one ``HybridSearch`` per allowed index, and the routes."""

    def __init__(
        self,
        settings: SearchServiceSettings,
        embedding: DeploymentHandle[Any] | None = None,
        ui: UiFactory | None = None,
    ) -> None:
        self._settings = settings
        _SearchBodyLimit.max_bytes = settings.max_body_bytes
        self._cluster = settings.cluster_spec().connect(detect=True)
        self._embedder = self._make_embedder(settings, embedding)
        self._image = self._make_image_signal(settings)
        self._rerank = self._make_rerank(settings)
        self._searches: dict[tuple[str, LexicalForm | None], HybridSearch] = {}
        self._lock = threading.Lock()
        self._ubi: UbiLogger | None = None
        self._intake: EventIntake | None = None
        if settings.ubi:
            self._ubi = UbiLogger(
                self._cluster,
                queries_index=settings.ubi_queries_index,
                events_index=settings.ubi_events_index,
                queue_size=settings.events_queue_size,
            )
            self._intake = EventIntake(self._ubi, settings.events)
        self._ui_factory = ui
        self._ui: UiRoutes | None = None

    @staticmethod
    def _make_embedder(settings: SearchServiceSettings, embedding: DeploymentHandle[Any] | None) -> Embedder | None:
        if isinstance(embedding, DeploymentHandle):
            return HandleEmbedder(embedding, timeout_s=settings.embed_timeout_s)
        if settings.embed_app:
            return HandleEmbedder(serve.get_app_handle(settings.embed_app), timeout_s=settings.embed_timeout_s)
        if settings.embed_url:  # one try; the search waits embed_budget_s for it, then answers the lexical result
            return EmbeddingClient(settings.embed_url, timeout_s=settings.embed_timeout_s, max_retries=0)
        logger.warning("search service has no embedder: only mode=bm25 will work")
        return None

    @staticmethod
    def _make_image_signal(settings: SearchServiceSettings) -> ImageSignal | None:
        if not settings.image_url:
            return None
        client = EmbeddingClient(settings.image_url, timeout_s=settings.embed_timeout_s, max_retries=2)
        return ImageSignal(embedder=client, field=settings.image_field, weight=settings.image_weight)

    @staticmethod
    def _make_rerank(settings: SearchServiceSettings) -> RerankConfig | None:
        if not settings.rerank_url:
            return None
        # no retries: within the budget the fused order is the fallback (flagged rerank_fallback)
        return RerankConfig(
            url=settings.rerank_url, top_k=settings.rerank_top_k, timeout_s=settings.rerank_budget_s, max_retries=0
        )

    def _search_for(self, index: str | None, lexical_form: LexicalForm | None = None) -> HybridSearch:
        name = index or self._settings.index
        if name not in self._settings.allowed_indices:
            raise SearchRequestError(
                f"index {name!r} is not served here; allowed: {', '.join(self._settings.allowed_indices)}",
                field="index",
                forbidden=True,
            )
        with self._lock:
            if (name, lexical_form) not in self._searches:
                self._searches[name, lexical_form] = HybridSearch(
                    self._cluster,
                    name,
                    embedder=self._embedder,
                    lexical_form=lexical_form,
                    fusion=self._settings.fusion,
                    strategy=self._settings.strategy,
                    max_depth=self._settings.max_depth,
                    correct=self._settings.correct,
                    image=self._image,
                    rerank=self._rerank,
                    embed_budget_s=self._settings.embed_budget_s,
                    breaker_failures=self._settings.embed_breaker_failures,
                    breaker_open_s=self._settings.embed_breaker_open_s,
                    ubi=self._ubi,
                )
            return self._searches[name, lexical_form]

    @_api.post("/search")
    def search(self, body: SearchRequestBody) -> JSONResponse:
        started = time.perf_counter()
        request = body.search_request()
        search = self._search_for(body.index)
        arms: dict[str, Any] | None = None
        if body.experiment is not None:
            spec = self._settings.experiment
            if spec is None or spec.name != body.experiment:
                served = spec.name if spec else "none"
                raise SearchRequestError(
                    f"experiment {body.experiment!r} is not served here (served: {served})", field="experiment"
                )
            if not body.client_id:
                raise SearchRequestError("an experiment search needs the shopper's client_id", field="client_id")
            options = {k: v for k, v in request.options().items() if k not in ("size", "page", "client_id")}
            response, arms = experiment_search(
                search, request.text, spec=spec, client_id=body.client_id, size=body.size, page=body.page, **options
            )
        else:
            response = search.search(request.text, **request.options())
        payload = response.model_dump(mode="json", exclude={"requests"})
        if arms is not None:
            payload["experiment"] = arms
        if body.console:
            payload["console"] = render_response(response)
        logger.debug("search %r took %.1f ms", body.text, (time.perf_counter() - started) * 1000)
        return JSONResponse(payload)

    @_api.get("/metrics")
    def metrics(self, request: Request) -> Response:
        """This replica's Prometheus series: searches by mode, stage latencies, fallbacks, requests by status."""
        search_registry = default_search_metrics().registry
        body, content_type = _service_metrics.exposition(request.headers.get("accept"), also=[search_registry])
        return Response(content=body, media_type=content_type)

    @_api.post("/events")
    async def events(self, request: Request) -> JSONResponse:
        """UBI event records from browsers (:mod:`connector.ubi.intake`: caps, validation, rate limits, 429)."""
        if self._intake is None:
            return _error(404, "not_found", "POST /events is off: start serve search with --ubi", None)
        limit = self._intake.settings.max_body_bytes
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            return _error(413, "too_large", f"the body is over {limit} bytes; send fewer records", "body")
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > limit:
                return _error(413, "too_large", f"the body is over {limit} bytes; send fewer records", "body")
        # Inline, not in the thread pool: validating a capped body is CPU only (no I/O), well under a millisecond
        # per record, and queueing never blocks.
        answer = self._intake.handle(bytes(body), address=request.client.host if request.client else "unknown")
        return JSONResponse(answer.body, status_code=answer.status)

    @_api.get("/events/stats")
    def events_stats(self) -> dict[str, Any]:
        """This replica's event counts: what the endpoint took and what the logger wrote."""
        if self._intake is None or self._ubi is None:
            return {"enabled": False}
        ubi = self._ubi
        logger_counts = {"written": ubi.written, "dropped": ubi.dropped, "failed": ubi.failed, "queued": ubi.queued}
        return {"enabled": True, "intake": self._intake.counts.to_json(), "logger": logger_counts}

    def __del__(self) -> None:
        # Ray Serve calls __del__ on a graceful shutdown: send what the UBI queue still holds.
        ubi = getattr(self, "_ubi", None)
        if ubi is not None:
            ubi.close(timeout_s=5.0)

    @_api.api_route("/ui{rest:path}", methods=["GET", "POST"], include_in_schema=False)
    async def ui(self, request: Request) -> Response:
        """The relevance workbench (its routes answer in plain types; the searches block: a worker thread)."""
        if self._ui_factory is None:
            return _error(404, "not_found", "no workbench here: `eshybrid serve search` serves it at /ui")
        root = str(request.scope.get("root_path", "")).rstrip("/")
        path = request.url.path.removeprefix(root) if root else request.url.path
        client = request.client.host if request.client else None
        body = await request.body()
        status, headers, payload = await run_in_threadpool(
            self._ui_routes().handle_http, request.method, path, request.url.query, dict(request.headers), body,
            client, root,
        )  # fmt: skip
        return Response(payload, status_code=status, headers={k: v for k, v in headers if k != "Content-Length"})

    def _ui_routes(self) -> UiRoutes:
        with self._lock:
            if self._ui is None and self._ui_factory is not None:
                self._ui = self._ui_factory(self._cluster, self._settings.index, make_search=self._form_search)
        assert self._ui is not None
        return self._ui

    def _form_search(self, lexical_form: LexicalForm | None) -> HybridSearch:
        return self._search_for(None, lexical_form)

    @_api.get("/healthz")
    def healthz(self) -> dict[str, str]:
        return {"status": "ok"}

    def check_health(self) -> None:
        # _cluster/health, not GET /: servers without the rest-root module answer GET / with 405.
        self._cluster.request("GET", "/_cluster/health")


def build_search_app(
    settings: SearchServiceSettings, *, embedding: Application | None = None, ui: UiFactory | None = None
) -> Application:
    """The search application for ``serve.run(app, name=..., route_prefix=...)``.

    Args:
        settings: the deployable's settings.
        embedding: a bound embedding application (``embedding_service.build_app(...)``) to compose
            into this one; its deployment handle then embeds the queries. Without it the replica uses
            ``settings.embed_app`` (another running Serve app) or ``settings.embed_url``.
        ui: builds the routes served under ``/ui`` (``eshybrid serve search`` passes the workbench's);
            ``None``: no ``/ui``.
    """
    actor_options: dict[str, Any] = {"num_cpus": settings.num_cpus_per_replica}
    if settings.malloc_arena_max:
        # Read by glibc when the process starts: a Ray worker of its own with this variable (measured in-process with
        # the soak's searches, 6,000 of them on 16 threads: glibc's default arenas grew 227 -> 265 MB, 191 MB of it
        # freed but kept; with 2 arenas it stayed at 131 MB; the live bytes were ~73 MB in both). 2 is the one value
        # tried, picked before measuring: the usual cap for many-threaded servers.
        actor_options["runtime_env"] = {"env_vars": {"MALLOC_ARENA_MAX": str(settings.malloc_arena_max)}}
    deployment = serve.deployment(
        name="SearchDeployment",
        num_replicas=settings.replicas,
        ray_actor_options=actor_options,
        max_ongoing_requests=settings.max_ongoing_requests,
        health_check_period_s=10.0,
    )(SearchDeployment)
    return deployment.bind(settings, embedding, ui)
