"""One search, observed: its span (``eshybrid.search``) and its metrics, around the facade's call.

``with observe_search(mode=..., index=...) as seen: response = ...; seen.done(response)`` is the whole wiring of a
facade: the span is current while the search runs (its stage and cluster-request spans nest under it), the
finished response is recorded (:meth:`SearchMetrics.record`) and its figures are set on the span, and a search
that raises is counted by exception class and marked on the span.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from connector.observe.metrics import SearchMetrics, default_search_metrics, search_stage_ms
from connector.observe.tracing import SPAN_SEARCH, span

if TYPE_CHECKING:
    from connector.search.models import SearchResponse

__all__ = ["SearchObservation", "observe_search"]


class SearchObservation:
    """What a facade tells about the search it is running (see :func:`observe_search`)."""

    def __init__(self, current_span: Any, metrics: SearchMetrics) -> None:
        self._span = current_span
        self._metrics = metrics

    def done(self, response: SearchResponse) -> None:
        """Record the finished ``response`` and set its figures on the search span."""
        self._metrics.record(response)
        if self._span is None or not self._span.is_recording():
            return
        attributes: dict[str, Any] = {
            "eshybrid.strategy": response.strategy,
            "eshybrid.hits": len(response.hits),
            "eshybrid.reranked": response.reranked,
            "eshybrid.rerank_fallback": response.rerank_fallback,
            "eshybrid.vector_fallback": bool(getattr(response, "vector_fallback", False)),
            "eshybrid.total_ms": response.timings.total_ms,
        }
        for name in ("query_id", "round_trips", "server_form"):
            value = getattr(response, name, None)
            if value is not None:
                attributes[f"eshybrid.{name}"] = value
        for stage, ms in search_stage_ms(response.timings).items():
            attributes[f"eshybrid.stage.{stage}_ms"] = ms  # fuse has no span of its own: it is in-process work
        self._span.set_attributes(attributes)


@contextmanager
def observe_search(*, mode: str, index: str, metrics: SearchMetrics | None = None) -> Iterator[SearchObservation]:
    """The span and metrics of one search (``metrics``: default, the process's :func:`default_search_metrics`).

    Never the query text or the user in an attribute: traces are often kept longer than the search log.
    """
    recorder = metrics if metrics is not None else default_search_metrics()
    with span(SPAN_SEARCH, {"eshybrid.mode": mode, "eshybrid.index": index}) as current:
        try:
            yield SearchObservation(current, recorder)
        except Exception as error:
            recorder.record_error(mode, error)
            raise
