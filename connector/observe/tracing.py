"""OpenTelemetry traces of a search (``opentelemetry-api``, optional; a no-op without it).

One span per search (``eshybrid.search``), a child span per stage (``eshybrid.search.embed``, ...) and per cluster
request (``eshybrid.cluster.request``, with ``http.request.method`` and the path's endpoint, never the body or the
query text). The W3C ``traceparent``/``tracestate`` headers of the current span go on the cluster requests and
the requests to our services, so the official client's spans, the cluster's own and the services' nest under it.

The API alone records nothing: an application that installs the SDK and a ``TracerProvider`` gets the spans;
without ``opentelemetry-api`` installed every function here does nothing and costs a dict lookup.
"""

from __future__ import annotations

import contextvars
import functools
from collections.abc import Callable, Mapping, MutableMapping
from contextlib import AbstractContextManager, nullcontext
from typing import Any, TypeVar

try:  # optional: the base install has no opentelemetry-api
    from opentelemetry import context as _context
    from opentelemetry import propagate as _propagate
    from opentelemetry import trace as _trace
except ImportError:  # pragma: no cover - exercised by the base install only
    _trace = None  # type: ignore[assignment]
    _propagate = None  # type: ignore[assignment]
    _context = None  # type: ignore[assignment]

__all__ = [
    "SPAN_CLUSTER_REQUEST",
    "SPAN_SEARCH",
    "TRACER_NAME",
    "available",
    "cluster_request_span",
    "cluster_stage",
    "endpoint_of",
    "in_current_context",
    "inject_trace_headers",
    "set_tracer_provider",
    "span",
    "stage_span",
]

R = TypeVar("R")
TRACER_NAME = "eshybrid"
SPAN_SEARCH = "eshybrid.search"
SPAN_CLUSTER_REQUEST = "eshybrid.cluster.request"
_AttributeValue = str | bool | int | float


def available() -> bool:
    """Whether ``opentelemetry-api`` is installed (spans still need an SDK provider to be recorded)."""
    return _trace is not None


class _Tracers:
    """The tracer eshybrid's spans go to: the global provider's (a proxy that follows it), or one set here."""

    tracer: Any = None


def set_tracer_provider(provider: Any) -> None:
    """Send eshybrid's spans to ``provider`` instead of OpenTelemetry's global one (``None``: back to it).

    For an application that keeps several providers, and for tests (the global provider can be set only once).
    """
    if _trace is not None:
        _Tracers.tracer = provider.get_tracer(TRACER_NAME) if provider is not None else None


class _CurrentSpan:
    """A span made current for a ``with`` block: what ``start_as_current_span`` does, at half its cost.

    (No generator-based context manager and no ``use_span`` wrapper: a search opens several of these, and the
    bench holds the whole observability cost of a search under 3 %.) An exception leaving the block is recorded on
    the span and marks it as an error.
    """

    __slots__ = ("_attributes", "_name", "_span", "_token")

    def __init__(self, name: str, attributes: Mapping[str, _AttributeValue] | None) -> None:
        self._name = name
        self._attributes = attributes
        self._span: Any = None
        self._token: Any = None

    def __enter__(self) -> Any:
        assert _trace is not None and _context is not None
        tracer = _Tracers.tracer
        if tracer is None:
            tracer = _Tracers.tracer = _trace.get_tracer(TRACER_NAME)  # a proxy: it follows the global provider
        self._span = tracer.start_span(self._name, attributes=self._attributes)
        self._token = _context.attach(_trace.set_span_in_context(self._span))
        return self._span

    def __exit__(self, kind: Any, error: BaseException | None, _tb: Any) -> None:
        _context.detach(self._token)
        if error is not None and self._span.is_recording():
            self._span.record_exception(error)
            self._span.set_status(_trace.Status(_trace.StatusCode.ERROR, f"{type(error).__name__}: {error}"))
        self._span.end()


def span(name: str, attributes: Mapping[str, _AttributeValue] | None = None) -> AbstractContextManager[Any]:
    """A span named ``name``, child of the current one, made current inside the ``with`` block.

    An exception leaving the block is recorded on the span and sets its status to error.
    """
    if _trace is None:
        return nullcontext()
    return _CurrentSpan(name, attributes)


def stage_span(stage: str) -> AbstractContextManager[Any]:
    """The span of one search stage (``correct``, ``embed``, ``rerank``...): ``eshybrid.search.<stage>``."""
    return span(f"{SPAN_SEARCH}.{stage}", {"eshybrid.stage": stage})


# The stage a cluster request belongs to, set by the search's driver loop around the request: the request's own span
# carries it (a stage that is one cluster request gets no second span of its own).
_STAGE: contextvars.ContextVar[str | None] = contextvars.ContextVar("eshybrid_stage", default=None)


class _Stage:
    __slots__ = ("_stage", "_token")

    def __init__(self, stage: str) -> None:
        self._stage = stage
        self._token: Any = None

    def __enter__(self) -> None:
        self._token = _STAGE.set(self._stage)

    def __exit__(self, *exc: object) -> None:
        _STAGE.reset(self._token)


def cluster_stage(stage: str) -> AbstractContextManager[None]:
    """Mark the cluster requests sent inside the block as the search stage ``stage`` (``legs``, ``fetch``...)."""
    return _Stage(stage)


def endpoint_of(path: str) -> str:
    """The endpoint of a cluster path without index names (``my-index/_msearch`` -> ``_msearch``).

    Index names are the caller's data; the endpoint is one of a few dozen API names (a bounded attribute).
    """
    parts = [p for p in path.split("?", 1)[0].split("/") if p]
    endpoint = [p for p in parts if p.startswith("_")]
    return "/".join(endpoint) if endpoint else ("/" if not parts else "{index}")


def cluster_request_span(method: str, path: str) -> AbstractContextManager[Any]:
    """The span of one request to the cluster (its trace headers come from :func:`inject_trace_headers`).

    Inside a search stage (:func:`cluster_stage`) it carries ``eshybrid.stage``: that request is the stage.
    """
    if _trace is None:
        return nullcontext()
    attributes: dict[str, _AttributeValue] = {
        "http.request.method": method.upper(),
        "db.operation.name": endpoint_of(path),
    }
    stage = _STAGE.get()
    if stage is not None:
        attributes["eshybrid.stage"] = stage
    return _CurrentSpan(SPAN_CLUSTER_REQUEST, attributes)


def in_current_context(fn: Callable[..., R]) -> Callable[..., R]:
    """``fn`` bound to a copy of the caller's context, to run in a worker thread (``pool.submit``).

    OpenTelemetry keeps the current span in a ``contextvars`` variable, which a thread pool does not carry: a
    cluster request sent from a worker thread would start a trace of its own instead of nesting under the search.
    """
    return functools.partial(contextvars.copy_context().run, fn)


def inject_trace_headers(headers: MutableMapping[str, str]) -> MutableMapping[str, str]:
    """Add the current span's W3C ``traceparent`` (and ``tracestate``) to ``headers``; return them.

    Adds nothing when no span is being recorded (no SDK, or outside any span).
    """
    if _propagate is not None and _trace is not None and _trace.get_current_span().get_span_context().is_valid:
        _propagate.inject(headers)  # sampled out or not: downstream keeps the trace's sampling decision
    return headers
