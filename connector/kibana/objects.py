"""Kibana and OpenSearch Dashboards saved objects, generated from a real index mapping.

Pure functions: each takes a mapping (the ``mappings`` part of ``GET <index>/_mapping``)
and returns saved objects (dicts) that the Saved Objects import API accepts
(``POST /api/saved_objects/_import``, one object per ndjson line). Nothing here talks to
a cluster; ``eshybrid kibana export`` (``connector/cli/kibana.py``) reads the mapping and
writes the files, and ``docker/kibana`` / ``docker/opensearch-dashboards`` hold the
objects generated from the builders' default mappings.

What is generated:

- per hybrid index: a data view (Kibana) / index pattern (Dashboards) whose source
  filters hide the raw vector arrays from Discover while the text fields, the fields
  ``_meta`` describes and the per-document model id stay visible (Kibana also gets
  labels and descriptions from ``_meta``), and a saved search over those fields;
- over the job documents, the dead letters and the search log: data views, saved
  searches and one dashboard each (Lens panels on Kibana, data-table visualizations on
  Dashboards, which has no Lens).

Every field a saved object names is picked from the mapping it was generated from,
so a field that is not in the index never appears (:func:`named_fields` lists them).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final, Literal, get_args

from connector.errors import ConfigError

__all__ = [
    "DashboardsFlavor",
    "SavedObject",
    "VECTOR_FIELD_TYPES",
    "dashboards_flavor",
    "data_view",
    "data_view_id",
    "hybrid_index_objects",
    "jobs_objects",
    "mapping_fields",
    "named_fields",
    "saved_search",
    "search_log_objects",
    "time_field",
    "to_ndjson",
    "vector_fields",
]

DashboardsFlavor = Literal["kibana", "opensearch-dashboards"]
SavedObject = dict[str, Any]

VECTOR_FIELD_TYPES: Final = frozenset({"dense_vector", "knn_vector", "rank_vectors", "sparse_vector"})

# Versions stamped on the objects. Kibana migrates an object whose version is older than
# its own on import, and refuses a newer one, so these are the oldest versions whose shape
# the objects below already have (8.x formats; Kibana 9 migrates them forward).
_KIBANA_CORE_VERSION: Final = "8.8.0"
_KIBANA_TYPE_VERSIONS: Final = {"index-pattern": "8.0.0", "search": "8.0.0", "lens": "8.9.0", "dashboard": "8.7.0"}
# OpenSearch Dashboards keeps Kibana 7.10's per-type migrationVersion.
_OSD_MIGRATION_VERSIONS: Final = {
    "index-pattern": "7.6.0", "search": "7.9.3", "visualization": "7.10.0", "dashboard": "7.9.3"
}  # fmt: skip

_SEARCH_SOURCE_REF: Final = "kibanaSavedObjectMeta.searchSourceJSON.index"
_LAYER: Final = "layer1"
_RECORDS: Final = "___records___"  # Lens' pseudo-field for "count of documents"

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


# -- reading a mapping -------------------------------------------------------------


def dashboards_flavor(cluster_flavor: str) -> DashboardsFlavor:
    """The dashboards app of a cluster flavor (``elasticsearch`` -> ``kibana``)."""
    if cluster_flavor in get_args(DashboardsFlavor):
        return cluster_flavor  # type: ignore[return-value]
    if cluster_flavor == "elasticsearch":
        return "kibana"
    if cluster_flavor == "opensearch":
        return "opensearch-dashboards"
    raise ConfigError(
        f"unknown flavor {cluster_flavor!r}: use kibana or opensearch-dashboards (or auto with a cluster)",
        field="flavor",
    )


def mapping_fields(mapping: Mapping[str, Any]) -> dict[str, str]:
    """Every searchable leaf field of a mapping, by dotted path, with its type.

    Multi-fields appear as ``<field>.<sub>`` (``title.keyword``); objects are walked,
    not listed; fields mapped with ``enabled: false`` are left out.
    """
    found: dict[str, str] = {}
    _walk(mapping.get("properties") or {}, "", found)
    return found


def _walk(properties: Mapping[str, Any], prefix: str, found: dict[str, str]) -> None:
    for name, spec in properties.items():
        path = prefix + name
        if not isinstance(spec, Mapping) or spec.get("enabled") is False:
            continue
        kind = spec.get("type", "object")
        if "properties" in spec:
            _walk(spec["properties"], path + ".", found)
        if kind in ("object", "nested"):
            continue
        found[path] = str(kind)
        for sub, sub_spec in (spec.get("fields") or {}).items():
            if isinstance(sub_spec, Mapping) and "type" in sub_spec:
                found[f"{path}.{sub}"] = str(sub_spec["type"])


def vector_fields(mapping: Mapping[str, Any]) -> list[str]:
    """The vector fields of a mapping (by type, plus any ``_meta.eshybrid.vector_fields`` one)."""
    fields = mapping_fields(mapping)
    names = [path for path, kind in fields.items() if kind in VECTOR_FIELD_TYPES]
    for name in _eshybrid_meta(mapping).get("vector_fields") or {}:
        if name in fields and name not in names:
            names.append(name)
    return names


def time_field(mapping: Mapping[str, Any], *, preferred: Sequence[str] = ()) -> str | None:
    """The date field a data view filters time on: the first of ``preferred`` the mapping
    has as a date, else ``@timestamp`` or ``timestamp``, else None (no time filter)."""
    fields = mapping_fields(mapping)
    for name in (*preferred, "@timestamp", "timestamp"):
        if fields.get(name) in ("date", "date_nanos"):
            return name
    return None


def _eshybrid_meta(mapping: Mapping[str, Any]) -> Mapping[str, Any]:
    meta = (mapping.get("_meta") or {}).get("eshybrid") or {}
    return meta if isinstance(meta, Mapping) else {}


def _first(fields: Mapping[str, str], candidates: Iterable[str]) -> str | None:
    return next((name for name in candidates if name in fields), None)


def _aggregatable(fields: Mapping[str, str], name: str | None) -> str | None:
    """``name`` when it can be bucketed, else its ``.keyword`` subfield when it has one."""
    if name is None:
        return None
    if fields.get(name) == "text":
        return f"{name}.keyword" if fields.get(f"{name}.keyword") == "keyword" else None
    return name


def _field_attrs(mapping: Mapping[str, Any]) -> dict[str, dict[str, str]]:
    """Labels and descriptions for Kibana's ``fieldAttrs``, from ``_meta`` and field ``meta``."""
    fields = mapping_fields(mapping)
    meta = _eshybrid_meta(mapping)
    attrs: dict[str, dict[str, str]] = {}

    def describe(path: str, description: str, label: str | None = None) -> None:
        if path not in fields:
            return
        entry = attrs.setdefault(path, {})
        entry.setdefault("customDescription", description[:300])
        if label:
            entry.setdefault("customLabel", label)

    for vf, info in (meta.get("vector_fields") or {}).items():
        info = info if isinstance(info, Mapping) else {}
        model = str(info.get("model_id", "the embedding model"))
        describe(vf, f"{info.get('dims', '?')}-dim vector from {model} (hidden from Discover)")
        for source in info.get("source_fields") or ():
            describe(source, f"embedded into '{vf}' by {model}")
        describe(
            f"eshybrid_meta.{vf}.model_id", f"model that embedded '{vf}' for this document", f"Embedding model ({vf})"
        )
        describe(
            f"eshybrid_meta.{vf}.text_hash", f"sha256 of the text embedded into '{vf}'", f"Embedded text hash ({vf})"
        )
    for path, description in (meta.get("fields") or {}).items():
        if isinstance(description, str):
            describe(path, description)
    _field_meta_descriptions(mapping.get("properties") or {}, "", describe)
    return attrs


def _field_meta_descriptions(properties: Mapping[str, Any], prefix: str, describe: Any) -> None:
    # Elasticsearch's per-field `meta` ({"description": ..., "unit": ...}) is also shown.
    for name, spec in properties.items():
        if not isinstance(spec, Mapping):
            continue
        field_meta = spec.get("meta")
        if isinstance(field_meta, Mapping) and isinstance(field_meta.get("description"), str):
            describe(prefix + name, field_meta["description"])
        if "properties" in spec:
            _field_meta_descriptions(spec["properties"], prefix + name + ".", describe)


# -- single objects ----------------------------------------------------------------


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9_-]+", "-", text.lower()).strip("-") or "all"


def data_view_id(title: str) -> str:
    """The stable id of the data view eshybrid generates for an index (or pattern)."""
    return f"eshybrid-dv-{_slug(title)}"


def _stamp(obj: SavedObject, flavor: DashboardsFlavor) -> SavedObject:
    kind = obj["type"]
    if flavor == "kibana":
        obj["coreMigrationVersion"] = _KIBANA_CORE_VERSION
        obj["typeMigrationVersion"] = _KIBANA_TYPE_VERSIONS[kind]
        obj["managed"] = False
    else:
        obj["migrationVersion"] = {kind: _OSD_MIGRATION_VERSIONS[kind]}
    return obj


def data_view(
    *,
    title: str,
    mapping: Mapping[str, Any],
    flavor: DashboardsFlavor,
    name: str | None = None,
    time_field_name: str | None = None,
    object_id: str | None = None,
) -> SavedObject:
    """A data view (Kibana) / index pattern (Dashboards) over ``title`` (an index or pattern).

    Vector fields go into ``sourceFilters`` so Discover does not show their raw arrays;
    on Kibana, ``fieldAttrs`` labels and describes the fields ``_meta`` describes.

    Args:
        title: the index, alias or pattern the data view reads.
        mapping: that index's mapping.
        flavor: ``kibana`` or ``opensearch-dashboards``.
        name: display name (Kibana); default ``eshybrid: <title>``.
        time_field_name: the time filter field; must be a date in the mapping.
        object_id: default :func:`data_view_id`.
    """
    if time_field_name is not None and mapping_fields(mapping).get(time_field_name) not in ("date", "date_nanos"):
        raise ConfigError(f"time field {time_field_name!r} is not a date field of {title!r}", field="time_field")
    source_filters = json.dumps([{"value": vf} for vf in vector_fields(mapping)])
    attributes: dict[str, Any] = {"title": title, "fields": "[]", "sourceFilters": source_filters}
    if time_field_name:
        attributes["timeFieldName"] = time_field_name
    if flavor == "kibana":
        attributes.update(
            name=name or f"eshybrid: {title}",
            fieldAttrs=json.dumps(_field_attrs(mapping), sort_keys=True),
            fieldFormatMap="{}",
            runtimeFieldMap="{}",
            allowNoIndex=True,
        )
    obj = {"type": "index-pattern", "id": object_id or data_view_id(title), "attributes": attributes,
           "references": []}  # fmt: skip
    return _stamp(obj, flavor)


def _search_source(query: str) -> str:
    return json.dumps(
        {"query": {"query": query, "language": "kuery"}, "filter": [], "indexRefName": _SEARCH_SOURCE_REF}
    )


def saved_search(
    *,
    object_id: str,
    title: str,
    data_view_ref: str,
    columns: Sequence[str],
    flavor: DashboardsFlavor,
    sort_field: str | None = None,
    query: str = "",
    description: str = "",
) -> SavedObject:
    """A saved search (Discover) over a data view, showing ``columns``.

    Args:
        object_id: the saved object id.
        title: the title shown in Discover and on dashboards.
        data_view_ref: the id of the data view it reads.
        columns: the fields shown as columns.
        flavor: ``kibana`` or ``opensearch-dashboards``.
        sort_field: sorted newest first on this field when given.
        query: a KQL query (``type : job``).
        description: shown in the saved objects list.
    """
    attributes: dict[str, Any] = {
        "title": title,
        "description": description,
        "columns": list(columns),
        "sort": [[sort_field, "desc"]] if sort_field else [],
        "kibanaSavedObjectMeta": {"searchSourceJSON": _search_source(query)},
    }
    if flavor == "kibana":
        attributes.update(grid={}, hideChart=False, isTextBasedQuery=False)
    else:
        attributes.update(hits=0, version=1)
    obj = {
        "type": "search",
        "id": object_id,
        "attributes": attributes,
        "references": [{"name": _SEARCH_SOURCE_REF, "type": "index-pattern", "id": data_view_ref}],
    }
    return _stamp(obj, flavor)


# -- Lens (Kibana) -----------------------------------------------------------------


def _col_date(field: str) -> dict[str, Any]:
    return {"label": field, "dataType": "date", "operationType": "date_histogram", "sourceField": field,
            "isBucketed": True, "scale": "interval", "params": {"interval": "auto", "includeEmptyRows": True}}  # fmt: skip


def _col_terms(field: str, order_by: str, size: int = 10) -> dict[str, Any]:
    return {"label": f"Top values of {field}", "dataType": "string", "operationType": "terms",
            "sourceField": field, "isBucketed": True, "scale": "ordinal",
            "params": {"size": size, "orderBy": {"type": "column", "columnId": order_by},
                       "orderDirection": "desc", "otherBucket": True, "missingBucket": False}}  # fmt: skip


def _col_metric(operation: str, field: str | None, label: str, **params: Any) -> dict[str, Any]:
    return {"label": label, "customLabel": True, "dataType": "number", "operationType": operation,
            "sourceField": field or _RECORDS, "isBucketed": False, "scale": "ratio", "params": params}  # fmt: skip


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
    return _stamp({"type": "lens", "id": object_id, "attributes": attributes, "references": references}, "kibana")


def _lens_over_time(*, object_id: str, title: str, data_view_ref: str, time: str,
                    metrics: Mapping[str, dict[str, Any]], query: str = "") -> SavedObject:  # fmt: skip
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


def _lens_bar_by(*, object_id: str, title: str, data_view_ref: str, field: str,
                 metric: dict[str, Any], query: str = "") -> SavedObject:  # fmt: skip
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


def _lens_metric(*, object_id: str, title: str, data_view_ref: str, metric: dict[str, Any],
                 query: str = "") -> SavedObject:  # fmt: skip
    visualization = {"layerId": _LAYER, "layerType": "data", "metricAccessor": "metric"}
    return _lens(object_id=object_id, title=title, data_view_ref=data_view_ref, columns={"metric": metric},
                 visualization_type="lnsMetric", visualization=visualization, query=query)  # fmt: skip


# -- data-table visualizations (OpenSearch Dashboards) -----------------------------


def _table_vis(*, object_id: str, title: str, data_view_ref: str, bucket_field: str,
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
        "kibanaSavedObjectMeta": {"searchSourceJSON": _search_source(query)},
    }
    references = [{"name": _SEARCH_SOURCE_REF, "type": "index-pattern", "id": data_view_ref}]
    obj = {"type": "visualization", "id": object_id, "attributes": attributes, "references": references}
    return _stamp(obj, "opensearch-dashboards")


# -- dashboards --------------------------------------------------------------------


def _dashboard(*, object_id: str, title: str, description: str, panels: Sequence[SavedObject],
               flavor: DashboardsFlavor) -> SavedObject:  # fmt: skip
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
        ref_name = f"panel_{n}" if flavor == "opensearch-dashboards" else f"panel_{index}"
        entry: dict[str, Any] = {"type": panel["type"], "panelIndex": index, "embeddableConfig": {},
                                 "gridData": {"x": x, "y": y, "w": width, "h": height, "i": index},
                                 "panelRefName": ref_name}  # fmt: skip
        if flavor == "kibana":
            entry["embeddableConfig"] = {"enhancements": {}}
        else:
            entry["version"] = "7.10.2"
        panels_json.append(entry)
        # Kibana names a panel's reference "<panelIndex>:<panelRefName>"; Dashboards (7.10) "panel_<n>".
        ref = ref_name if flavor == "opensearch-dashboards" else f"{index}:{ref_name}"
        references.append({"name": ref, "type": panel["type"], "id": panel["id"]})
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
    }
    if flavor == "opensearch-dashboards":
        attributes["hits"] = 0
    obj = {"type": "dashboard", "id": object_id, "attributes": attributes, "references": references}
    return _stamp(obj, flavor)


# -- bundles: what `eshybrid kibana export` writes ---------------------------------


def _present(fields: Mapping[str, str], names: Iterable[str]) -> list[str]:
    return [name for name in names if name in fields and fields[name] not in VECTOR_FIELD_TYPES]


def hybrid_index_objects(index: str, mapping: Mapping[str, Any], *, flavor: DashboardsFlavor) -> list[SavedObject]:
    """The data view of a hybrid index and a saved search showing its text and model id.

    Args:
        index: the index, alias or pattern.
        mapping: its mapping (with eshybrid's ``_meta`` when the mappings package built it).
        flavor: ``kibana`` or ``opensearch-dashboards``.

    Returns:
        ``[data view, saved search]``.
    """
    fields = mapping_fields(mapping)
    view = data_view(title=index, mapping=mapping, flavor=flavor, time_field_name=time_field(mapping))
    wanted: list[str] = []
    for vf, info in (_eshybrid_meta(mapping).get("vector_fields") or {}).items():
        info = info if isinstance(info, Mapping) else {}
        wanted.extend(str(name) for name in info.get("source_fields") or ())
        wanted.append(f"eshybrid_meta.{vf}.model_id")
    if not wanted:  # not built by eshybrid: show the text fields
        wanted = [name for name, kind in fields.items() if kind == "text"][:6]
    columns = list(dict.fromkeys(_present(fields, wanted)))
    search = saved_search(
        object_id=f"eshybrid-search-{_slug(index)}",
        title=f"eshybrid: {index} documents",
        data_view_ref=view["id"],
        columns=columns,
        flavor=flavor,
        sort_field=view["attributes"].get("timeFieldName"),
        description="Text fields and the embedding model of each document; vectors are hidden.",
    )
    return [view, search]


def jobs_objects(
    jobs_mapping: Mapping[str, Any],
    *,
    flavor: DashboardsFlavor,
    jobs_index: str = "eshybrid-jobs",
    dead_letter_mapping: Mapping[str, Any] | None = None,
    dead_letter_index: str = "eshybrid-dead-letters",
) -> list[SavedObject]:
    """Data views, saved searches and a dashboard over backfill / reindex jobs.

    The dashboard shows the jobs (status, docs/s, dead letters), jobs by status, the
    throughput and dead letters of each job, and the dead letters by reason.

    Args:
        jobs_mapping: the mapping of the job documents index.
        flavor: ``kibana`` or ``opensearch-dashboards``.
        jobs_index: that index's name.
        dead_letter_mapping: the mapping of the dead-letter index (panels left out when None).
        dead_letter_index: that index's name.
    """
    fields = mapping_fields(jobs_mapping)
    role = {name: _first(fields, candidates) for name, candidates in _JOB_ROLES.items() if name != "columns"}
    time = time_field(jobs_mapping, preferred=_JOB_ROLES["time"])
    view = data_view(title=jobs_index, mapping=jobs_mapping, flavor=flavor, time_field_name=time,
                     name="eshybrid: jobs")  # fmt: skip
    # The jobs index also holds per-slice checkpoints: panels show the job documents only.
    only_jobs = f"{role['doc_type']} : job" if role["doc_type"] else ""
    objects: list[SavedObject] = [view]
    panels: list[SavedObject] = [
        saved_search(
            object_id="eshybrid-search-jobs",
            title="eshybrid: jobs",
            data_view_ref=view["id"],
            columns=_present(fields, _JOB_ROLES["columns"]),
            flavor=flavor,
            sort_field=time,
            query=only_jobs,
            description="One row per backfill / reindex job.",
        )  # fmt: skip
    ]
    panels.extend(_job_panels(fields, role, view_id=view["id"], query=only_jobs, flavor=flavor))
    if dead_letter_mapping is not None:
        dl_objects, dl_panels = _dead_letter_objects(dead_letter_mapping, flavor=flavor, index=dead_letter_index)
        objects.extend(dl_objects)
        panels.extend(dl_panels)
    objects.extend(panels)
    objects.append(_dashboard(object_id="eshybrid-dashboard-jobs", title="eshybrid: jobs",
                              description="Backfill and reindex jobs: status, throughput, dead letters.",
                              panels=panels, flavor=flavor))  # fmt: skip
    return objects


def _job_panels(fields: Mapping[str, str], role: Mapping[str, str | None], *, view_id: str, query: str,
                flavor: DashboardsFlavor) -> list[SavedObject]:  # fmt: skip
    """Jobs by status, and the throughput and dead letters of each job (the fields the mapping has)."""
    by_job, status = _aggregatable(fields, role["job"]), _aggregatable(fields, role["status"])
    panels: list[SavedObject] = []
    if flavor == "kibana":
        if status:
            panels.append(_lens_bar_by(object_id="eshybrid-lens-jobs-by-status", title="Jobs by status",
                                       data_view_ref=view_id, field=status, query=query,
                                       metric=_col_metric("count", None, "Jobs")))  # fmt: skip
        if by_job and role["rate"]:
            panels.append(_lens_bar_by(object_id="eshybrid-lens-jobs-rate", title="Throughput per job (docs/s)",
                                       data_view_ref=view_id, field=by_job, query=query,
                                       metric=_col_metric("max", role["rate"], "docs/s")))  # fmt: skip
        if by_job and role["dead_letters"]:
            panels.append(_lens_bar_by(object_id="eshybrid-lens-jobs-dead-letters", title="Dead letters per job",
                                       data_view_ref=view_id, field=by_job, query=query,
                                       metric=_col_metric("max", role["dead_letters"], "Dead letters")))  # fmt: skip
        return panels
    if status:
        panels.append(_table_vis(object_id="eshybrid-vis-jobs-by-status", title="Jobs by status",
                                 data_view_ref=view_id, bucket_field=status, query=query,
                                 metrics=[("count", None)]))  # fmt: skip
    metrics = [("max", f) for f in (role["rate"], role["dead_letters"]) if f]
    if by_job and metrics:
        panels.append(_table_vis(object_id="eshybrid-vis-jobs-progress",
                                 title="Throughput (docs/s) and dead letters per job",
                                 data_view_ref=view_id, bucket_field=by_job, query=query, metrics=metrics))  # fmt: skip
    return panels


def _dead_letter_objects(
    mapping: Mapping[str, Any], *, flavor: DashboardsFlavor, index: str
) -> tuple[list[SavedObject], list[SavedObject]]:
    fields = mapping_fields(mapping)
    time = time_field(mapping, preferred=_DEAD_LETTER_ROLES["time"])
    view = data_view(title=index, mapping=mapping, flavor=flavor, time_field_name=time,
                     name="eshybrid: dead letters")  # fmt: skip
    panels = [
        saved_search(
            object_id="eshybrid-search-dead-letters",
            title="eshybrid: dead letters",
            data_view_ref=view["id"],
            columns=_present(fields, _DEAD_LETTER_ROLES["columns"]),
            flavor=flavor,
            sort_field=time,
            description="Documents a job could not embed or write, and why.",
        )  # fmt: skip
    ]
    reason = _aggregatable(fields, _first(fields, _DEAD_LETTER_ROLES["reason"]))
    if reason and flavor == "kibana":
        panels.append(_lens_bar_by(object_id="eshybrid-lens-dead-letters-by-reason", title="Dead letters by reason",
                                   data_view_ref=view["id"], field=reason,
                                   metric=_col_metric("count", None, "Dead letters")))  # fmt: skip
    elif reason:
        panels.append(_table_vis(object_id="eshybrid-vis-dead-letters-by-reason", title="Dead letters by reason",
                                 data_view_ref=view["id"], bucket_field=reason, metrics=[("count", None)]))  # fmt: skip
    return [view], panels


def search_log_objects(
    mapping: Mapping[str, Any], *, flavor: DashboardsFlavor, index: str = "eshybrid-search-log"
) -> list[SavedObject]:
    """Data view, saved search and a dashboard over the search log (:mod:`connector.search.log`).

    The dashboard shows latency over time (mean and 95th percentile), searches by mode,
    rerank fallbacks and the latest searches.
    """
    fields = mapping_fields(mapping)
    role = {name: _first(fields, candidates) for name, candidates in _SEARCH_LOG_ROLES.items() if name != "columns"}
    time = time_field(mapping, preferred=_SEARCH_LOG_ROLES["time"])
    view = data_view(title=index, mapping=mapping, flavor=flavor, time_field_name=time,
                     name="eshybrid: search log")  # fmt: skip
    panels: list[SavedObject] = []
    latency, mode, fallback = role["latency"], _aggregatable(fields, role["mode"]), role["fallback"]
    if flavor == "kibana":
        if time and latency:
            metrics = {"mean": _col_metric("average", latency, "mean ms"),
                       "p95": _col_metric("percentile", latency, "p95 ms", percentile=95)}  # fmt: skip
            panels.append(_lens_over_time(object_id="eshybrid-lens-search-latency", title="Search latency (ms)",
                                          data_view_ref=view["id"], time=time, metrics=metrics))  # fmt: skip
        if mode:
            panels.append(_lens_bar_by(object_id="eshybrid-lens-searches-by-mode", title="Searches by mode",
                                       data_view_ref=view["id"], field=mode,
                                       metric=_col_metric("count", None, "Searches")))  # fmt: skip
        if time and fallback:
            panels.append(_lens_over_time(object_id="eshybrid-lens-rerank-fallbacks", title="Rerank fallbacks",
                                          data_view_ref=view["id"], time=time, query=f"{fallback} : true",
                                          metrics={"count": _col_metric("count", None, "Fallbacks")}))  # fmt: skip
    else:
        if mode:
            metrics = [("count", None)] + ([("avg", latency), ("max", latency)] if latency else [])
            panels.append(_table_vis(object_id="eshybrid-vis-searches-by-mode", title="Searches and latency (ms) by mode",
                                     data_view_ref=view["id"], bucket_field=mode, metrics=metrics))  # fmt: skip
        if fallback:
            panels.append(_table_vis(object_id="eshybrid-vis-rerank-fallbacks", title="Rerank fallbacks",
                                     data_view_ref=view["id"], bucket_field=fallback, metrics=[("count", None)]))  # fmt: skip
    panels.append(saved_search(object_id="eshybrid-search-search-log", title="eshybrid: latest searches",
                               data_view_ref=view["id"], columns=_present(fields, _SEARCH_LOG_ROLES["columns"]),
                               flavor=flavor, sort_field=time, description="One row per logged search."))  # fmt: skip
    dashboard = _dashboard(object_id="eshybrid-dashboard-searches", title="eshybrid: searches",
                           description="Hybrid searches: latency per stage, modes, rerank fallbacks.",
                           panels=panels, flavor=flavor)  # fmt: skip
    return [view, *panels, dashboard]


# -- files and checks --------------------------------------------------------------


def to_ndjson(objects: Iterable[SavedObject]) -> str:
    """One object per line, keys sorted, as the Saved Objects import API reads them."""
    return "".join(json.dumps(obj, sort_keys=True, ensure_ascii=False) + "\n" for obj in objects)


_KQL_FIELD = re.compile(r"([A-Za-z_@][\w.@]*)\s*:")


def named_fields(obj: Mapping[str, Any]) -> set[str]:
    """Every index field a saved object names (time field, filters, columns, aggregations, queries)."""
    attrs = obj.get("attributes") or {}
    names: set[str] = set()
    kind = obj.get("type")
    if kind == "index-pattern":
        names.update(f["value"] for f in json.loads(attrs.get("sourceFilters") or "[]"))
        names.update(json.loads(attrs.get("fieldAttrs") or "{}"))
        if attrs.get("timeFieldName"):
            names.add(attrs["timeFieldName"])
    elif kind == "search":
        names.update(attrs.get("columns") or ())
        names.update(sort[0] for sort in attrs.get("sort") or ())
    elif kind == "lens":
        for layer in attrs["state"]["datasourceStates"]["formBased"]["layers"].values():
            names.update(c["sourceField"] for c in layer["columns"].values() if c.get("sourceField") != _RECORDS)
        names.update(_KQL_FIELD.findall(attrs["state"]["query"]["query"]))
    elif kind == "visualization":
        vis_state = json.loads(attrs["visState"])
        names.update(agg["params"]["field"] for agg in vis_state["aggs"] if agg["params"].get("field"))
    meta = attrs.get("kibanaSavedObjectMeta") or {}
    if meta.get("searchSourceJSON"):
        query = json.loads(meta["searchSourceJSON"]).get("query") or {}
        names.update(_KQL_FIELD.findall(str(query.get("query", ""))))
    return names
