"""The shoppers dashboard over the UBI indexes: zero-result queries, clicks by position, experiments.

Built from the ``ubi_queries`` / ``ubi_events`` mappings (the real ones, or
:mod:`mappings.system`'s when the indexes do not exist yet); a field a mapping lacks leaves its
panel out. Kibana gets Lens charts, OpenSearch Dashboards data tables (:mod:`connector.kibana.apps`).

- **Zero-result queries**: searches whose ``query_response_hit_ids`` is empty, the most frequent
  ``user_query`` texts first, and a saved search listing them;
- **Clicks by position** beside **impressions by position** (CTR at a rank = clicks / impressions
  there; the click models of :mod:`connector.feedback` correct it for position bias);
- **Experiments**: searches per experiment and arm (``query_attributes``); the verdict (wins,
  p-value) comes from ``eshybrid experiment report``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from connector.kibana.apps import DashboardsApp, DashboardsFlavor, SavedObject, dashboards_app
from connector.kibana.charts import dashboard, lens_bar_by, lens_metric_column, table_vis
from connector.kibana.fields import aggregatable, first_present, mapping_fields, present, time_field
from connector.kibana.objects import data_view, saved_search

__all__ = ["ubi_objects"]

_ZERO_RESULTS: Final = "NOT query_response_hit_ids : *"
_POSITION: Final = ("event_attributes.position.ordinal",)
_QUERY_TEXT: Final = ("user_query.keyword", "user_query")
_ARM: Final = ("query_attributes.arm",)
_EXPERIMENT: Final = ("query_attributes.experiment",)
_QUERY_COLUMNS: Final = ("user_query", "client_id", "session_id", "application", "query_attributes.configuration")


def _bar(app: DashboardsApp, *, object_id: str, title: str, view: str, field: str, query: str = "") -> SavedObject:
    if app.charts == "lens":
        return lens_bar_by(object_id=f"eshybrid-lens-{object_id}", title=title, data_view_ref=view, field=field,
                           metric=lens_metric_column("count", None, "Count"), query=query)  # fmt: skip
    return table_vis(object_id=f"eshybrid-vis-{object_id}", title=title, data_view_ref=view, bucket_field=field,
                     metrics=[("count", None)], query=query)  # fmt: skip


def ubi_objects(
    queries_mapping: Mapping[str, Any],
    events_mapping: Mapping[str, Any],
    *,
    flavor: DashboardsFlavor | DashboardsApp,
    queries_index: str = "ubi_queries",
    events_index: str = "ubi_events",
) -> list[SavedObject]:
    """Data views of both indexes, the panels of the module docstring and one dashboard."""
    app = dashboards_app(flavor)
    q_fields, e_fields = mapping_fields(queries_mapping), mapping_fields(events_mapping)
    q_time = time_field(queries_mapping, preferred=("timestamp",))
    e_time = time_field(events_mapping, preferred=("timestamp",))
    q_view = data_view(title=queries_index, mapping=queries_mapping, flavor=app, time_field_name=q_time,
                       name="eshybrid: shoppers' searches (UBI)")  # fmt: skip
    e_view = data_view(title=events_index, mapping=events_mapping, flavor=app, time_field_name=e_time,
                       name="eshybrid: shoppers' actions (UBI)")  # fmt: skip
    panels: list[SavedObject] = []
    text = aggregatable(q_fields, first_present(q_fields, _QUERY_TEXT))
    if text:
        panels.append(_bar(app, object_id="ubi-zero-results", title="Zero-result queries", view=q_view["id"],
                           field=text, query=_ZERO_RESULTS))  # fmt: skip
    position = aggregatable(e_fields, first_present(e_fields, _POSITION))
    if position:
        for action in ("click", "impression"):
            panels.append(_bar(app, object_id=f"ubi-{action}s-by-position", title=f"{action.title()}s by position",
                               view=e_view["id"], field=position, query=f'action_name : "{action}"'))  # fmt: skip
    arm, experiment = first_present(q_fields, _ARM), first_present(q_fields, _EXPERIMENT)
    if arm and experiment:
        panels.append(_bar(app, object_id="ubi-experiment-arms", title="Experiment searches by arm",
                           view=q_view["id"], field=arm, query=f"{experiment} : *"))  # fmt: skip
    panels.append(saved_search(object_id="eshybrid-search-ubi-zero-results", title="eshybrid: zero-result searches",
                               data_view_ref=q_view["id"], columns=present(q_fields, _QUERY_COLUMNS), flavor=app,
                               sort_field=q_time, query=_ZERO_RESULTS,
                               description="Searches that showed no hit."))  # fmt: skip
    board = dashboard(object_id="eshybrid-dashboard-shoppers", title="eshybrid: shoppers",
                      description="What shoppers searched and did (UBI): zero-result queries, clicks and impressions "
                                  "by position, experiment traffic.", panels=panels, app=app)  # fmt: skip
    return [q_view, e_view, *panels, board]
