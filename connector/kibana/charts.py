"""Charts and the dashboards that lay them out: Lens (Kibana), data tables (Dashboards, which has no Lens).

Pure builders of saved objects; which of them a dashboard uses is read from the app's
:attr:`~connector.kibana.apps.DashboardsApp.charts`.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping, Sequence
from typing import Any, Final

from connector.kibana.apps import KIBANA, OPENSEARCH_DASHBOARDS, DashboardsApp, SavedObject
from connector.kibana.objects import SEARCH_SOURCE_REF, search_source

__all__ = [
    "LENS_RECORDS",
    "dashboard",
    "lens_bar_by",
    "lens_over_time",
    "lens_metric_column",
    "table_vis",
]

LENS_RECORDS: Final = "___records___"  # Lens' pseudo-field for "count of documents"
_LAYER: Final = "layer1"


# -- Lens (Kibana) -----------------------------------------------------------------


def _col_date(field: str) -> dict[str, Any]:
    return {"label": field, "dataType": "date", "operationType": "date_histogram", "sourceField": field,
            "isBucketed": True, "scale": "interval", "params": {"interval": "auto", "includeEmptyRows": True}}  # fmt: skip


def _col_terms(field: str, order_by: str, size: int = 10) -> dict[str, Any]:
    return {"label": f"Top values of {field}", "dataType": "string", "operationType": "terms",
            "sourceField": field, "isBucketed": True, "scale": "ordinal",
            "params": {"size": size, "orderBy": {"type": "column", "columnId": order_by},
                       "orderDirection": "desc", "otherBucket": True, "missingBucket": False}}  # fmt: skip


def lens_metric_column(operation: str, field: str | None, label: str, **params: Any) -> dict[str, Any]:
    """A Lens metric column: ``operation`` (``count``, ``max``, ``average``, ``percentile``...) of ``field``
    (None: count of documents)."""
    return {"label": label, "customLabel": True, "dataType": "number", "operationType": operation,
            "sourceField": field or LENS_RECORDS, "isBucketed": False, "scale": "ratio", "params": params}  # fmt: skip


def _lens(
    *,
    object_id: str,
    title: str,
    data_view_ref: str,
    columns: Mapping[str, dict[str, Any]],
    visualization_type: str,
    visualization: dict[str, Any],
    query: str = "",
) -> SavedObject:
    layer = {"columns": dict(columns), "columnOrder": list(columns), "incompleteColumns": {}}
    attributes = {
        "title": title,
        "description": "",
        "visualizationType": visualization_type,
        "state": {
            "datasourceStates": {"formBased": {"layers": {_LAYER: layer}}},
            "visualization": visualization,
            "query": {"query": query, "language": "kuery"},
            "filters": [],
            "internalReferences": [],
            "adHocDataViews": {},
        },
    }
    references = [{"type": "index-pattern", "id": data_view_ref, "name": f"indexpattern-datasource-layer-{_LAYER}"}]
    return KIBANA.stamp({"type": "lens", "id": object_id, "attributes": attributes, "references": references})


def lens_over_time(*, object_id: str, title: str, data_view_ref: str, time: str,
                   metrics: Mapping[str, dict[str, Any]], query: str = "") -> SavedObject:  # fmt: skip
    """A Lens line chart of ``metrics`` (column id -> :func:`lens_metric_column`) over ``time``."""
    columns = {"x": _col_date(time), **metrics}
    visualization = {
        "preferredSeriesType": "line",
        "legend": {"isVisible": True, "position": "right"},
        "valueLabels": "hide",
        "layers": [{"layerId": _LAYER, "layerType": "data", "seriesType": "line", "xAccessor": "x",
                    "accessors": list(metrics)}],
    }  # fmt: skip
    return _lens(object_id=object_id, title=title, data_view_ref=data_view_ref, columns=columns,
                 visualization_type="lnsXY", visualization=visualization, query=query)  # fmt: skip


def lens_bar_by(*, object_id: str, title: str, data_view_ref: str, field: str,
                metric: dict[str, Any], query: str = "") -> SavedObject:  # fmt: skip
    """A Lens horizontal bar chart of ``metric`` per top value of ``field``."""
    columns = {"bucket": _col_terms(field, "metric"), "metric": metric}
    visualization = {
        "preferredSeriesType": "bar_horizontal",
        "legend": {"isVisible": False, "position": "right"},
        "valueLabels": "show",
        "layers": [{"layerId": _LAYER, "layerType": "data", "seriesType": "bar_horizontal",
                    "xAccessor": "bucket", "accessors": ["metric"]}],
    }  # fmt: skip
    return _lens(object_id=object_id, title=title, data_view_ref=data_view_ref, columns=columns,
                 visualization_type="lnsXY", visualization=visualization, query=query)  # fmt: skip


# -- data-table visualizations (OpenSearch Dashboards) -----------------------------


def table_vis(*, object_id: str, title: str, data_view_ref: str, bucket_field: str,
              metrics: Sequence[tuple[str, str | None]], query: str = "") -> SavedObject:  # fmt: skip
    """A data table: one row per top value of ``bucket_field``, one column per (agg, field)."""
    aggs: list[dict[str, Any]] = []
    for n, (agg, field) in enumerate(metrics, start=1):
        aggs.append({"id": str(n), "enabled": True, "type": agg, "schema": "metric",
                     "params": {"field": field} if field else {}})  # fmt: skip
    aggs.append({"id": str(len(aggs) + 1), "enabled": True, "type": "terms", "schema": "bucket",
                 "params": {"field": bucket_field, "size": 10, "order": "desc", "orderBy": "1",
                            "otherBucket": False, "missingBucket": False}})  # fmt: skip
    vis_state = {"title": title, "type": "table", "aggs": aggs,
                 "params": {"perPage": 10, "showPartialRows": False, "showMetricsAtAllLevels": False,
                            "showTotal": False, "totalFunc": "sum", "percentageCol": ""}}  # fmt: skip
    attributes = {
        "title": title,
        "description": "",
        "version": 1,
        "visState": json.dumps(vis_state),
        "uiStateJSON": "{}",
        "kibanaSavedObjectMeta": {"searchSourceJSON": search_source(query)},
    }
    references = [{"name": SEARCH_SOURCE_REF, "type": "index-pattern", "id": data_view_ref}]
    obj = {"type": "visualization", "id": object_id, "attributes": attributes, "references": references}
    return OPENSEARCH_DASHBOARDS.stamp(obj)


# -- dashboards --------------------------------------------------------------------


def dashboard(*, object_id: str, title: str, description: str, panels: Sequence[SavedObject],
              app: DashboardsApp) -> SavedObject:  # fmt: skip
    """A dashboard laying ``panels`` out two per row (a saved search takes a full row)."""
    panels_json: list[dict[str, Any]] = []
    references: list[dict[str, str]] = []
    x = y = 0
    for n, panel in enumerate(panels):
        wide = panel["type"] == "search"
        if wide and x:
            x, y = 0, y + 15
        width, height = (48, 15) if wide else (24, 15)
        index = str(n + 1)
        ref_name, reference = app.panel_names(n)
        entry: dict[str, Any] = {"type": panel["type"], "panelIndex": index, "embeddableConfig": {},
                                 "gridData": {"x": x, "y": y, "w": width, "h": height, "i": index},
                                 "panelRefName": ref_name}  # fmt: skip
        entry.update(copy.deepcopy(app.panel_attrs))
        panels_json.append(entry)
        references.append({"name": reference, "type": panel["type"], "id": panel["id"]})
        x, y = (0, y + height) if wide or x else (24, y)
    attributes: dict[str, Any] = {
        "title": title,
        "description": description,
        "panelsJSON": json.dumps(panels_json),
        "optionsJSON": json.dumps({"useMargins": True, "hidePanelTitles": False}),
        "timeRestore": False,
        "version": 1,
        "kibanaSavedObjectMeta": {
            "searchSourceJSON": json.dumps({"query": {"query": "", "language": "kuery"}, "filter": []})
        },
        **copy.deepcopy(app.dashboard_attrs),
    }
    return app.stamp({"type": "dashboard", "id": object_id, "attributes": attributes, "references": references})
