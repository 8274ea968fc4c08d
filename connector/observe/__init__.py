"""Production habits: Prometheus metrics and OpenTelemetry traces (both optional extras, no-ops without them).

``pip install 'eshybrid[observe]'`` installs ``prometheus-client`` and ``opentelemetry-api``. This package imports
nothing of ours, so every layer (cluster access, the service clients, search, jobs, the model services) may use it.
README "Operate it" lists the series and spans.
"""

from __future__ import annotations

from connector.observe.jobs import JOB_SERIES, JobSample, push_job_metrics, write_job_textfile
from connector.observe.metrics import (
    FALLBACK_REASONS,
    SEARCH_SERIES,
    SEARCH_STAGES,
    SERVICE_SERIES,
    SearchMetrics,
    ServiceMetrics,
    default_search_metrics,
    wants_prometheus,
)
from connector.observe.search import SearchObservation, observe_search
from connector.observe.tracing import cluster_request_span, inject_trace_headers, span, stage_span

__all__ = [
    "FALLBACK_REASONS",
    "JOB_SERIES",
    "JobSample",
    "SEARCH_SERIES",
    "SEARCH_STAGES",
    "SERVICE_SERIES",
    "SearchMetrics",
    "SearchObservation",
    "ServiceMetrics",
    "cluster_request_span",
    "default_search_metrics",
    "inject_trace_headers",
    "observe_search",
    "push_job_metrics",
    "span",
    "stage_span",
    "wants_prometheus",
    "write_job_textfile",
]
