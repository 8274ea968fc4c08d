"""The jobs and search-log dashboards: data views, saved searches, charts and one dashboard each.

Fields are looked for by role (the first candidate the mapping has is used), so a
renamed or missing field leaves its panel out instead of naming a field the index lacks.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final

from connector.kibana.apps import DashboardsApp, DashboardsFlavor, SavedObject, dashboards_app
from connector.kibana.charts import dashboard, lens_bar_by, lens_metric_column, lens_over_time, table_vis
from connector.kibana.fields import aggregatable, first_present, mapping_fields, present, time_field
from connector.kibana.objects import data_view, saved_search

__all__ = ["jobs_objects", "search_log_objects"]

# Fields looked for, by role, in the job documents (connector/jobs/store.py) and the
# search log (connector/search/log.py); the first one the mapping has is used.
_JOB_ROLES: Final = {
    "time": ("updated_at", "started_at", "finished_at"),
    "columns": (
        "job_id", "kind", "status", "phase", "index", "target_index", "vector_field", "model_id",
        "rate_docs_per_s", "total_counts.read", "total_counts.updated", "total_counts.dead_lettered",
        "docs_total", "started_at", "finished_at",
    ),
    "status": ("status",),
    "kind": ("kind",),
    "job": ("job_id",),
    "rate": ("rate_docs_per_s", "docs_per_s"),
    "dead_letters": ("total_counts.dead_lettered", "counts.dead_lettered", "dead_letters"),
    "doc_type": ("type",),
}  # fmt: skip
_DEAD_LETTER_ROLES: Final = {
    "time": ("at", "timestamp"),
    "columns": ("job_id", "index", "doc_id", "vector_field", "reason_code", "reason", "text_excerpt"),
    "reason": ("reason_code",),
}
_SEARCH_LOG_ROLES: Final = {
    "time": ("timestamp", "@timestamp"),
    "columns": (
        "query", "query_sha256", "index", "mode", "strategy", "fusion", "hit_count", "latency_ms.total",
        "latency_ms.embed", "latency_ms.search", "latency_ms.rerank", "rerank_fallback",
    ),
    "latency": ("latency_ms.total",),
    "mode": ("mode",),
    "fallback": ("rerank_fallback",),
}  # fmt: skip

_Roles = Mapping[str, str | None]


def _roles(fields: Mapping[str, str], roles: Mapping[str, Sequence[str]]) -> dict[str, str | None]:
    return {name: first_present(fields, candidates) for name, candidates in roles.items() if name != "columns"}


# -- jobs and dead letters ---------------------------------------------------------


def jobs_objects(
    jobs_mapping: Mapping[str, Any],
    *,
    flavor: DashboardsFlavor | DashboardsApp,
    jobs_index: str = "eshybrid-jobs",
    dead_letter_mapping: Mapping[str, Any] | None = None,
    dead_letter_index: str = "eshybrid-dead-letters",
) -> list[SavedObject]:
    """Data views, saved searches and a dashboard over backfill / reindex jobs.

    The dashboard shows the jobs (status, docs/s, dead letters), jobs by status, the
    throughput and dead letters of each job, and the dead letters by reason.

    Args:
        jobs_mapping: the mapping of the job documents index.
        flavor: ``kibana`` or ``opensearch-dashboards`` (or its :class:`DashboardsApp`).
        jobs_index: that index's name.
        dead_letter_mapping: the mapping of the dead-letter index (panels left out when None).
        dead_letter_index: that index's name.
    """
    app = dashboards_app(flavor)
    fields = mapping_fields(jobs_mapping)
    role = _roles(fields, _JOB_ROLES)
    time = time_field(jobs_mapping, preferred=_JOB_ROLES["time"])
    view = data_view(title=jobs_index, mapping=jobs_mapping, flavor=app, time_field_name=time,
                     name="eshybrid: jobs")  # fmt: skip
    # The jobs index also holds per-slice checkpoints: panels show the job documents only.
    only_jobs = f"{role['doc_type']} : job" if role["doc_type"] else ""
    objects: list[SavedObject] = [view]
    panels: list[SavedObject] = [
        saved_search(
            object_id="eshybrid-search-jobs",
            title="eshybrid: jobs",
            data_view_ref=view["id"],
            columns=present(fields, _JOB_ROLES["columns"]),
            flavor=app,
            sort_field=time,
            query=only_jobs,
            description="One row per backfill / reindex job.",
        )  # fmt: skip
    ]
    panels.extend(_JOB_PANELS[app.charts](fields, role, view_id=view["id"], query=only_jobs))
    if dead_letter_mapping is not None:
        dl_objects, dl_panels = _dead_letter_objects(dead_letter_mapping, app=app, index=dead_letter_index)
        objects.extend(dl_objects)
        panels.extend(dl_panels)
    objects.extend(panels)
    objects.append(dashboard(object_id="eshybrid-dashboard-jobs", title="eshybrid: jobs",
                             description="Backfill and reindex jobs: status, throughput, dead letters.",
                             panels=panels, app=app))  # fmt: skip
    return objects


def _job_lens_panels(fields: Mapping[str, str], role: _Roles, *, view_id: str, query: str) -> list[SavedObject]:
    """Jobs by status, and the throughput and dead letters of each job, as Lens bar charts."""
    by_job, status = aggregatable(fields, role["job"]), aggregatable(fields, role["status"])
    panels: list[SavedObject] = []
    if status:
        panels.append(lens_bar_by(object_id="eshybrid-lens-jobs-by-status", title="Jobs by status",
                                  data_view_ref=view_id, field=status, query=query,
                                  metric=lens_metric_column("count", None, "Jobs")))  # fmt: skip
    if by_job and role["rate"]:
        panels.append(lens_bar_by(object_id="eshybrid-lens-jobs-rate", title="Throughput per job (docs/s)",
                                  data_view_ref=view_id, field=by_job, query=query,
                                  metric=lens_metric_column("max", role["rate"], "docs/s")))  # fmt: skip
    if by_job and role["dead_letters"]:
        panels.append(lens_bar_by(object_id="eshybrid-lens-jobs-dead-letters", title="Dead letters per job",
                                  data_view_ref=view_id, field=by_job, query=query,
                                  metric=lens_metric_column("max", role["dead_letters"], "Dead letters")))  # fmt: skip
    return panels


def _job_table_panels(fields: Mapping[str, str], role: _Roles, *, view_id: str, query: str) -> list[SavedObject]:
    """Jobs by status, and the throughput and dead letters of each job, as data tables."""
    by_job, status = aggregatable(fields, role["job"]), aggregatable(fields, role["status"])
    panels: list[SavedObject] = []
    if status:
        panels.append(table_vis(object_id="eshybrid-vis-jobs-by-status", title="Jobs by status",
                                data_view_ref=view_id, bucket_field=status, query=query,
                                metrics=[("count", None)]))  # fmt: skip
    metrics = [("max", f) for f in (role["rate"], role["dead_letters"]) if f]
    if by_job and metrics:
        panels.append(table_vis(object_id="eshybrid-vis-jobs-progress",
                                title="Throughput (docs/s) and dead letters per job",
                                data_view_ref=view_id, bucket_field=by_job, query=query, metrics=metrics))  # fmt: skip
    return panels


def _dead_letter_objects(
    mapping: Mapping[str, Any], *, app: DashboardsApp, index: str
) -> tuple[list[SavedObject], list[SavedObject]]:
    """The dead letters' data view, and its panels: the latest dead letters and a count by reason."""
    fields = mapping_fields(mapping)
    time = time_field(mapping, preferred=_DEAD_LETTER_ROLES["time"])
    view = data_view(title=index, mapping=mapping, flavor=app, time_field_name=time,
                     name="eshybrid: dead letters")  # fmt: skip
    panels = [
        saved_search(
            object_id="eshybrid-search-dead-letters",
            title="eshybrid: dead letters",
            data_view_ref=view["id"],
            columns=present(fields, _DEAD_LETTER_ROLES["columns"]),
            flavor=app,
            sort_field=time,
            description="Documents a job could not embed or write, and why.",
        )  # fmt: skip
    ]
    reason = aggregatable(fields, first_present(fields, _DEAD_LETTER_ROLES["reason"]))
    if reason and app.charts == "lens":
        panels.append(lens_bar_by(object_id="eshybrid-lens-dead-letters-by-reason", title="Dead letters by reason",
                                  data_view_ref=view["id"], field=reason,
                                  metric=lens_metric_column("count", None, "Dead letters")))  # fmt: skip
    elif reason:
        panels.append(table_vis(object_id="eshybrid-vis-dead-letters-by-reason", title="Dead letters by reason",
                                data_view_ref=view["id"], bucket_field=reason, metrics=[("count", None)]))  # fmt: skip
    return [view], panels


_JOB_PANELS: Final[Mapping[str, Callable[..., list[SavedObject]]]] = {
    "lens": _job_lens_panels,
    "table": _job_table_panels,
}


# -- the search log ----------------------------------------------------------------


def search_log_objects(
    mapping: Mapping[str, Any], *, flavor: DashboardsFlavor | DashboardsApp, index: str = "eshybrid-search-log"
) -> list[SavedObject]:
    """Data view, saved search and a dashboard over the search log (:mod:`connector.search.log`).

    The dashboard shows latency over time (mean and 95th percentile), searches by mode,
    rerank fallbacks and the latest searches.
    """
    app = dashboards_app(flavor)
    fields = mapping_fields(mapping)
    role = _roles(fields, _SEARCH_LOG_ROLES)
    time = time_field(mapping, preferred=_SEARCH_LOG_ROLES["time"])
    view = data_view(title=index, mapping=mapping, flavor=app, time_field_name=time,
                     name="eshybrid: search log")  # fmt: skip
    panels = _SEARCH_LOG_PANELS[app.charts](fields, role, view_id=view["id"], time=time)
    panels.append(saved_search(object_id="eshybrid-search-search-log", title="eshybrid: latest searches",
                               data_view_ref=view["id"], columns=present(fields, _SEARCH_LOG_ROLES["columns"]),
                               flavor=app, sort_field=time, description="One row per logged search."))  # fmt: skip
    board = dashboard(object_id="eshybrid-dashboard-searches", title="eshybrid: searches",
                      description="Hybrid searches: latency per stage, modes, rerank fallbacks.",
                      panels=panels, app=app)  # fmt: skip
    return [view, *panels, board]


def _search_log_lens_panels(
    fields: Mapping[str, str], role: _Roles, *, view_id: str, time: str | None
) -> list[SavedObject]:
    """Latency over time (mean, p95), searches by mode and rerank fallbacks over time, as Lens charts."""
    latency, mode, fallback = role["latency"], aggregatable(fields, role["mode"]), role["fallback"]
    panels: list[SavedObject] = []
    if time and latency:
        metrics = {"mean": lens_metric_column("average", latency, "mean ms"),
                   "p95": lens_metric_column("percentile", latency, "p95 ms", percentile=95)}  # fmt: skip
        panels.append(lens_over_time(object_id="eshybrid-lens-search-latency", title="Search latency (ms)",
                                     data_view_ref=view_id, time=time, metrics=metrics))  # fmt: skip
    if mode:
        panels.append(lens_bar_by(object_id="eshybrid-lens-searches-by-mode", title="Searches by mode",
                                  data_view_ref=view_id, field=mode,
                                  metric=lens_metric_column("count", None, "Searches")))  # fmt: skip
    if time and fallback:
        panels.append(lens_over_time(object_id="eshybrid-lens-rerank-fallbacks", title="Rerank fallbacks",
                                     data_view_ref=view_id, time=time, query=f"{fallback} : true",
                                     metrics={"count": lens_metric_column("count", None, "Fallbacks")}))  # fmt: skip
    return panels


def _search_log_table_panels(
    fields: Mapping[str, str], role: _Roles, *, view_id: str, time: str | None
) -> list[SavedObject]:
    """Searches and latency by mode, and rerank fallbacks, as data tables (no time axis)."""
    latency, mode, fallback = role["latency"], aggregatable(fields, role["mode"]), role["fallback"]
    panels: list[SavedObject] = []
    if mode:
        metrics: list[tuple[str, str | None]] = [("count", None)]
        if latency:
            metrics += [("avg", latency), ("max", latency)]
        panels.append(table_vis(object_id="eshybrid-vis-searches-by-mode", title="Searches and latency (ms) by mode",
                                data_view_ref=view_id, bucket_field=mode, metrics=metrics))  # fmt: skip
    if fallback:
        panels.append(table_vis(object_id="eshybrid-vis-rerank-fallbacks", title="Rerank fallbacks",
                                data_view_ref=view_id, bucket_field=fallback, metrics=[("count", None)]))  # fmt: skip
    return panels


_SEARCH_LOG_PANELS: Final[Mapping[str, Callable[..., list[SavedObject]]]] = {
    "lens": _search_log_lens_panels,
    "table": _search_log_table_panels,
}
