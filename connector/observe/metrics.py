"""Prometheus metrics of a search app and of our HTTP services (``prometheus-client``, optional).

The series are documented in :data:`SEARCH_SERIES` and :data:`SERVICE_SERIES` (README "Operate it"). Labels hold
bounded values only (a route template, a status code, a stage, a mode, a fallback reason from a fixed list), never
query text, user ids or index names chosen per request.

Without ``prometheus-client`` installed every recorder here is a no-op, so the search facades can call them
unconditionally (``pip install 'eshybrid[observe]'`` turns them on).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator, MutableMapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

try:  # optional: the base install has no prometheus-client
    import prometheus_client
    from prometheus_client import CollectorRegistry, Counter, Histogram
    from prometheus_client.openmetrics.exposition import CONTENT_TYPE_LATEST as OPENMETRICS_CONTENT_TYPE
except ImportError:  # pragma: no cover - exercised by the base install only
    prometheus_client = None  # type: ignore[assignment]

if TYPE_CHECKING:
    from connector.search.models import SearchResponse

__all__ = [
    "FALLBACK_REASONS",
    "SERVICE_SERIES",
    "PROMETHEUS_TEXT",
    "SEARCH_SERIES",
    "SEARCH_STAGES",
    "ServiceMetrics",
    "CountingMiddleware",
    "SearchMetrics",
    "available",
    "default_search_metrics",
    "render",
    "search_stage_ms",
    "wants_prometheus",
]

PROMETHEUS_TEXT = "text/plain; version=0.0.4; charset=utf-8"

# The stages a search is cut into, in pipeline order, and the SearchTimings field each is read from.
SEARCH_STAGES: dict[str, tuple[str, ...]] = {
    "correct": ("correct_ms",),
    "embed": ("embed_ms",),
    "legs": ("legs_ms", "search_ms"),  # the re-cut names the legs' round trip legs_ms; before it, search_ms
    "fuse": ("fuse_ms",),
    "fetch": ("fetch_ms",),
    "rerank": ("rerank_ms",),
}
# Fallback reasons: a fixed list, so the label stays bounded whatever text a failure carries.
FALLBACK_REASONS = ("rerank", "vector", "rewrite", "correct")

# Latency buckets in seconds: 1 ms .. 10 s, dense where a search stage lives (5-500 ms).
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
_LATENCY_BUCKETS_S = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

SEARCH_SERIES: dict[str, str] = {
    "eshybrid_search_requests_total": "counter{mode,strategy}: searches answered",
    "eshybrid_search_errors_total": "counter{mode,error}: searches that raised (error: the exception class)",
    "eshybrid_search_duration_seconds": "histogram{mode}: whole search, as SearchTimings.total_ms",
    "eshybrid_search_stage_duration_seconds": "histogram{stage}: correct, embed, legs, fuse, fetch, rerank",
    "eshybrid_search_fallbacks_total": "counter{reason}: rerank, vector, rewrite, correct",
    "eshybrid_search_reranked_total": "counter: searches whose hits the reranker ordered",
    "eshybrid_search_zero_hits_total": "counter{mode}: searches that found nothing",
    "eshybrid_query_vector_cache_requests_total": "counter{result}: query-vector cache lookups, hit | miss",
}
SERVICE_SERIES: dict[str, str] = {
    "eshybrid_http_requests_total": "counter{service,route,status}: requests answered (status 429: overloaded)",
    "eshybrid_http_request_duration_seconds": "histogram{service,route}: time to answer",
    "eshybrid_http_requests_in_flight": "gauge{service}: requests being answered",
    "eshybrid_service_queue_depth": "gauge{service}: items admitted and not yet answered",
    "eshybrid_service_batch_size": "histogram{service}: items per model batch",
}


def available() -> bool:
    """Whether ``prometheus-client`` is installed (else every recorder is a no-op)."""
    return prometheus_client is not None


def wants_prometheus(accept: str | None) -> bool:
    """Whether an ``Accept`` header asks for the Prometheus text format rather than JSON.

    Prometheus sends ``application/openmetrics-text`` and ``text/plain;version=0.0.4``; ``curl`` sends ``*/*``
    and gets the services' JSON counters, as before.
    """
    if not accept:
        return False
    accept = accept.lower()
    return "openmetrics-text" in accept or "text/plain" in accept


class _Registries:
    """Several registries exposed as one (``generate_latest`` only calls ``collect``)."""

    def __init__(self, registries: Iterable[Any]) -> None:
        self._registries = list({id(r): r for r in registries}.values())

    def collect(self) -> Iterator[Any]:
        for registry in self._registries:
            yield from registry.collect()


def render(registry: Any, accept: str | None = None, *, also: Iterable[Any] = ()) -> tuple[bytes, str]:
    """The exposition of ``registry`` (and the registries in ``also``) in the format ``accept`` prefers.

    Returns:
        ``(body, content type)``.
    """
    also = [r for r in also if r is not None]
    if also:
        registry = _Registries([registry, *also])
    if prometheus_client is None:
        return b"# prometheus-client is not installed: pip install 'eshybrid[observe]'\n", PROMETHEUS_TEXT
    if accept and "openmetrics-text" in accept.lower():
        from prometheus_client.openmetrics.exposition import generate_latest as openmetrics_latest

        return openmetrics_latest(registry), OPENMETRICS_CONTENT_TYPE  # type: ignore[no-untyped-call]
    return prometheus_client.generate_latest(registry), PROMETHEUS_TEXT


def search_stage_ms(timings: Any) -> dict[str, float]:
    """``{stage: ms}`` read from a :class:`SearchTimings` (stages it does not carry are left out)."""
    stages: dict[str, float] = {}
    for stage, names in SEARCH_STAGES.items():
        for name in names:
            value = getattr(timings, name, None)
            if isinstance(value, int | float):
                stages[stage] = float(value)
                break
    return stages


class SearchMetrics:
    """The search series, in ``registry`` (default: prometheus-client's global one, that apps expose).

    A no-op when prometheus-client is absent, or while ``enabled`` is set to ``False``. One instance per registry:
    the series names are registered once.
    """

    def __init__(self, registry: Any = None) -> None:
        self.available = prometheus_client is not None
        self._enabled = self.available
        self.registry: Any = None
        self._children: dict[tuple[Any, ...], Any] = {}  # bounded: the labels take values from fixed sets
        if not self.available:
            return
        self.registry = registry if registry is not None else prometheus_client.REGISTRY
        kw: dict[str, Any] = {"registry": self.registry}
        self.requests = Counter("eshybrid_search_requests", "Searches answered.", ["mode", "strategy"], **kw)
        self.errors = Counter(
            "eshybrid_search_errors", "Searches that raised, by exception class.", ["mode", "error"], **kw
        )
        self.duration = Histogram(
            "eshybrid_search_duration_seconds", "Whole search time.", ["mode"], buckets=_LATENCY_BUCKETS_S, **kw
        )
        self.stage = Histogram(
            "eshybrid_search_stage_duration_seconds",
            "Time per search stage (a stage that did not run is not observed).",
            ["stage"],
            buckets=_LATENCY_BUCKETS_S,
            **kw,
        )
        self.fallbacks = Counter("eshybrid_search_fallbacks", "Searches that fell back, by reason.", ["reason"], **kw)
        self.reranked = Counter("eshybrid_search_reranked", "Searches whose hits the reranker ordered.", **kw)
        self.zero_hits = Counter("eshybrid_search_zero_hits", "Searches that found nothing.", ["mode"], **kw)
        self.cache = Counter("eshybrid_query_vector_cache_requests", "Query-vector cache lookups.", ["result"], **kw)
        for stage in SEARCH_STAGES:  # every stage shows up (at 0) from the first scrape
            self.stage.labels(stage=stage)
        for reason in FALLBACK_REASONS:
            self.fallbacks.labels(reason=reason)
        for result in ("hit", "miss"):
            self.cache.labels(result=result)

    @property
    def enabled(self) -> bool:
        """Whether searches are recorded (``False`` stops recording; the series keep their values)."""
        return self._enabled

    @enabled.setter
    def enabled(self, value: bool) -> None:
        self._enabled = value and self.available

    def record(self, response: SearchResponse) -> None:
        """Count one finished search: its mode, stage times, fallbacks, rerank and empty result."""
        if not self.enabled:
            return
        child = self._child
        child(self.requests, mode=response.mode, strategy=response.strategy).inc()
        timings = response.timings
        child(self.duration, mode=response.mode).observe(timings.total_ms / 1000.0)
        for stage, ms in search_stage_ms(timings).items():
            if ms > 0:  # a stage that did not run is not a 0 ms observation
                child(self.stage, stage=stage).observe(ms / 1000.0)
        for reason in _fallbacks(response):
            child(self.fallbacks, reason=reason).inc()
        if response.reranked:
            self.reranked.inc()
        if not response.hits:
            child(self.zero_hits, mode=response.mode).inc()

    def _child(self, metric: Any, **labels: str) -> Any:
        """``metric.labels(**labels)``, looked up once (``labels()`` costs more than the increment)."""
        key = (id(metric), *labels.values())
        found = self._children.get(key)
        if found is None:
            found = self._children[key] = metric.labels(**labels)
        return found

    def record_error(self, mode: str, error: BaseException) -> None:
        """Count one search that raised ``error`` (labelled by its class name: a bounded set)."""
        if self.enabled:
            self.errors.labels(mode=mode, error=type(error).__name__).inc()

    def record_cache(self, *, hit: bool) -> None:
        """Count one query-vector cache lookup."""
        if self.enabled:
            self._child(self.cache, result="hit" if hit else "miss").inc()


def _fallbacks(response: SearchResponse) -> Iterable[str]:
    if response.rerank_fallback:
        yield "rerank"
    if getattr(response, "vector_fallback", False):  # the lexical fallback of the search re-cut
        yield "vector"
    correction = response.correction
    if correction is not None:
        if correction.rewrite_fallback:
            yield "rewrite"
        if correction.error:
            yield "correct"


_DEFAULT_LOCK = threading.Lock()
_default: SearchMetrics | None = None


def default_search_metrics() -> SearchMetrics:
    """The process's search series in prometheus-client's global registry (created on first use).

    Under a lock: the replica's first searches arrive together on its thread pool, and two ``SearchMetrics()``
    would register the same series twice and fail the searches (``DuplicatedTimeseries``).
    """
    global _default
    with _DEFAULT_LOCK:
        if _default is None:
            _default = SearchMetrics()
        return _default


_Scope = MutableMapping[str, Any]
_Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
_Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
_ASGIApp = Callable[[_Scope, _Receive, _Send], Awaitable[None]]


@dataclass
class _RouteTimer:
    route: str
    start: float
    status: int = 500  # an app that raised before sending a status answered 500


class ServiceMetrics:
    """One HTTP service's series: requests by route and status, latency, in flight, queue depth, batch sizes.

    ``route`` is the route template (``/v1/embeddings``), never the raw path: a path outside ``routes`` counts as
    ``other``. Each service process keeps its own ``registry`` (a Ray Serve replica is one process, so its
    ``/metrics`` is that replica's view; README "Operate it" says how to scrape several replicas).

    Args:
        service: the ``service`` label (``embedding``, ``image``, ``rerank``, ``search``).
        routes: the route templates counted by name.
        queue_depth: read at scrape time for ``eshybrid_service_queue_depth`` (items admitted, not yet answered).
        registry: where the series live (default: a registry of their own).
    """

    def __init__(
        self,
        service: str,
        *,
        routes: Iterable[str],
        queue_depth: Callable[[], float] | None = None,
        registry: Any = None,
    ) -> None:
        self.service = service
        self.routes = frozenset(routes)
        self.enabled = prometheus_client is not None
        if not self.enabled:
            return
        from prometheus_client import Gauge

        self.registry = registry if registry is not None else CollectorRegistry()
        kw: dict[str, Any] = {"registry": self.registry}
        self.requests = Counter("eshybrid_http_requests", "Requests answered.", ["service", "route", "status"], **kw)
        self.duration = Histogram(
            "eshybrid_http_request_duration_seconds",
            "Time to answer a request.",
            ["service", "route"],
            buckets=_LATENCY_BUCKETS_S,
            **kw,
        )
        self.in_flight = Gauge("eshybrid_http_requests_in_flight", "Requests being answered.", ["service"], **kw)
        self.in_flight.labels(service=service)
        self.batch_size = Histogram(
            "eshybrid_service_batch_size", "Items per model batch.", ["service"], buckets=_BATCH_BUCKETS, **kw
        )
        self.queue_depth = Gauge(
            "eshybrid_service_queue_depth", "Items admitted and not yet answered.", ["service"], **kw
        )
        self.queue_depth.labels(service=service)  # every series shows up from the first scrape
        self.batch_size.labels(service=service)
        if queue_depth is not None:
            self.track_queue(queue_depth)

    def route_of(self, path: str) -> str:
        """The bounded route label of a request path."""
        return path if path in self.routes else "other"

    def track_queue(self, queue_depth: Callable[[], float]) -> None:
        """Read ``eshybrid_service_queue_depth`` from ``queue_depth`` at scrape time (set once the replica exists)."""
        if self.enabled:
            self.queue_depth.labels(service=self.service).set_function(queue_depth)

    def observe_batch(self, size: int) -> None:
        """Count one model batch of ``size`` items."""
        if self.enabled:
            self.batch_size.labels(service=self.service).observe(size)

    def start(self, path: str) -> _RouteTimer:
        timer = _RouteTimer(route=self.route_of(path), start=time.perf_counter())
        if self.enabled:
            self.in_flight.labels(service=self.service).inc()
        return timer

    def finish(self, timer: _RouteTimer) -> None:
        if not self.enabled:
            return
        labels = {"service": self.service, "route": timer.route}
        self.requests.labels(status=str(timer.status), **labels).inc()
        self.duration.labels(**labels).observe(time.perf_counter() - timer.start)
        self.in_flight.labels(service=self.service).dec()

    def asgi_middleware(self, app: _ASGIApp) -> _ASGIApp:
        """Wrap an ASGI ``app`` so each HTTP request it answers is counted (pure ASGI: no body buffering)."""

        async def counted(scope: _Scope, receive: _Receive, send: _Send) -> None:
            if scope.get("type") != "http" or not self.enabled:
                await app(scope, receive, send)
                return
            path, root = str(scope.get("path", "")), str(scope.get("root_path", ""))
            if root and path.startswith(root):  # behind a route prefix (Ray Serve's /embed): the app's own path
                path = path[len(root) :]
            timer = self.start(path)

            async def send_counted(message: MutableMapping[str, Any]) -> None:
                if message.get("type") == "http.response.start":
                    timer.status = int(message.get("status", 500))
                await send(message)

            try:
                await app(scope, receive, send_counted)
            finally:
                self.finish(timer)

        return counted

    def exposition(self, accept: str | None, *, also: Iterable[Any] = ()) -> tuple[bytes, str]:
        """This process's series (and those of the registries in ``also``), in the format ``accept`` prefers."""
        return render(self.registry if self.enabled else None, accept, also=also if self.enabled else ())

    def prometheus_response(self, accept: str | None) -> Any:
        """A Starlette ``Response`` with the exposition when ``accept`` asks for Prometheus, else ``None``.

        The services' ``GET /metrics`` answer JSON counters to people (``curl``) and this to Prometheus.
        """
        if not wants_prometheus(accept):
            return None
        from starlette.responses import Response  # the services' web framework; absent from the base install

        body, content_type = self.exposition(accept)
        return Response(content=body, media_type=content_type)


class CountingMiddleware:
    """Starlette/FastAPI middleware class around :meth:`ServiceMetrics.asgi_middleware`.

    ``app.add_middleware(CountingMiddleware, metrics=service_metrics)``.
    """

    def __init__(self, app: _ASGIApp, metrics: ServiceMetrics) -> None:
        self._app = metrics.asgi_middleware(app)

    async def __call__(self, scope: _Scope, receive: _Receive, send: _Send) -> None:
        await self._app(scope, receive, send)
