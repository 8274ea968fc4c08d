"""One search, observed: its span (``eshybrid.search``) and its metrics, around the facade's call.

``with observe_search(mode=..., index=...) as seen: response = ...; seen.done(response)`` is the whole wiring of a
facade: the span is current while the search runs (its stage and cluster-request spans nest under it), the
finished response is recorded (:meth:`SearchMetrics.record`) and its figures are set on the span, and a search
that raises is counted by exception class and marked on the span.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from connector.observe.metrics import SearchMetrics, default_search_metrics
from connector.observe.tracing import SPAN_SEARCH, span

if TYPE_CHECKING:
    from connector.search.models import SearchResponse

__all__ = ["SearchObservation", "observe_search"]


class SearchObservation:
    """What a facade tells about the search it is running (see :func:`observe_search`)."""

    __slots__ = ("_metrics", "_mode", "_span", "_span_cm")

    def __init__(self, *, mode: str, index: str, metrics: SearchMetrics) -> None:
        self._mode = mode
        self._metrics = metrics
        self._span_cm = span(SPAN_SEARCH, {"eshybrid.mode": mode, "eshybrid.index": index})
        self._span: Any = None

    def __enter__(self) -> SearchObservation:
        self._span = self._span_cm.__enter__()
        return self

    def __exit__(self, kind: Any, error: BaseException | None, tb: Any) -> None:
        if isinstance(error, Exception):
            self._metrics.record_error(self._mode, error)
        self._span_cm.__exit__(kind, error, tb)

    def done(self, response: SearchResponse) -> None:
        """Record the finished ``response`` and set its figures on the search span.

        Few attributes, as each costs the search time: the stages with spans of their own carry their durations;
        fusion, in-process work, has ``eshybrid.stage.fuse_ms``; a fallback flag is set only when raised.
        """
        self._metrics.record(response)
        current = self._span
        if current is None or not current.is_recording():
            return
        attributes: dict[str, Any] = {
            "eshybrid.strategy": response.strategy,
            "eshybrid.hits": len(response.hits),
            "eshybrid.stage.fuse_ms": response.timings.fuse_ms,
        }
        for name in ("query_id", "round_trips", "server_form"):
            value = getattr(response, name, None)
            if value is not None:
                attributes[f"eshybrid.{name}"] = value
        for flag in ("reranked", "rerank_fallback", "vector_fallback"):
            if getattr(response, flag, False):
                attributes[f"eshybrid.{flag}"] = True
        current.set_attributes(attributes)


def observe_search(*, mode: str, index: str, metrics: SearchMetrics | None = None) -> SearchObservation:
    """The span and metrics of one search (``metrics``: default, the process's :func:`default_search_metrics`).

    Never the query text or the user in an attribute: traces are often kept longer than the search log.
    """
    return SearchObservation(
        mode=mode, index=index, metrics=metrics if metrics is not None else default_search_metrics()
    )
