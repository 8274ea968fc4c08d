"""Single saved objects: data views (index patterns) and saved searches, and the pair for a hybrid index.

Pure functions: each takes a mapping (the ``mappings`` part of ``GET <index>/_mapping``)
and returns saved objects (dicts) that the Saved Objects import API accepts
(``POST /api/saved_objects/_import``, one object per ndjson line, see :func:`to_ndjson`).
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final

from connector.errors import ConfigError
from connector.kibana.apps import DashboardsApp, DashboardsFlavor, SavedObject, dashboards_app
from connector.kibana.fields import eshybrid_meta, field_attrs, mapping_fields, present, time_field, vector_fields
from mappings.images import image_vector_fields

__all__ = [
    "SEARCH_SOURCE_REF",
    "data_view",
    "data_view_id",
    "hybrid_index_objects",
    "saved_search",
    "search_source",
    "slug",
    "to_ndjson",
]

SEARCH_SOURCE_REF: Final = "kibanaSavedObjectMeta.searchSourceJSON.index"


def slug(text: str) -> str:
    """``text`` as a piece of a saved object id (lower case, ``[a-z0-9_-]``)."""
    return re.sub(r"[^a-z0-9_-]+", "-", text.lower()).strip("-") or "all"


def data_view_id(title: str) -> str:
    """The stable id of the data view eshybrid generates for an index (or pattern)."""
    return f"eshybrid-dv-{slug(title)}"


def search_source(query: str) -> str:
    """The ``searchSourceJSON`` of an object reading the data view referenced as :data:`SEARCH_SOURCE_REF`."""
    return json.dumps({"query": {"query": query, "language": "kuery"}, "filter": [], "indexRefName": SEARCH_SOURCE_REF})


def data_view(
    *,
    title: str,
    mapping: Mapping[str, Any],
    flavor: DashboardsFlavor | DashboardsApp,
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
        flavor: ``kibana`` or ``opensearch-dashboards`` (or its :class:`DashboardsApp`).
        name: display name (Kibana); default ``eshybrid: <title>``.
        time_field_name: the time filter field; must be a date in the mapping.
        object_id: default :func:`data_view_id`.

    Raises:
        ConfigError: ``time_field_name`` is not a date field of the mapping.
    """
    app = dashboards_app(flavor)
    if time_field_name is not None and mapping_fields(mapping).get(time_field_name) not in ("date", "date_nanos"):
        raise ConfigError(f"time field {time_field_name!r} is not a date field of {title!r}", field="time_field")
    source_filters = json.dumps([{"value": vf} for vf in vector_fields(mapping)])
    attributes: dict[str, Any] = {"title": title, "fields": "[]", "sourceFilters": source_filters}
    if time_field_name:
        attributes["timeFieldName"] = time_field_name
    if app.describes_fields:
        attributes.update(
            name=name or f"eshybrid: {title}", fieldAttrs=json.dumps(field_attrs(mapping), sort_keys=True)
        )
    attributes.update(copy.deepcopy(app.data_view_attrs))
    attributes.update(image_field_formats(mapping))
    obj = {"type": "index-pattern", "id": object_id or data_view_id(title), "attributes": attributes,
           "references": []}  # fmt: skip
    return app.stamp(obj)


def image_field_formats(mapping: Mapping[str, Any]) -> dict[str, str]:
    """``fieldFormatMap`` showing each image URL field (``_meta`` of an image vector) as an image in Discover.

    Both apps have the ``url`` field format with type ``img`` (Kibana 7.10+, hence OpenSearch Dashboards too);
    empty when the index has no image vector, so other data views keep the app's default.
    """
    fields = mapping_fields(mapping)
    urls = [f for f in image_vector_fields(mapping.get("_meta")).values() if f in fields]
    if not urls:
        return {}
    params = {"type": "img", "urlTemplate": None, "labelTemplate": None, "width": 96, "height": 96}
    formats = {name: {"id": "url", "params": params} for name in urls}
    return {"fieldFormatMap": json.dumps(formats, sort_keys=True)}


def saved_search(
    *,
    object_id: str,
    title: str,
    data_view_ref: str,
    columns: Sequence[str],
    flavor: DashboardsFlavor | DashboardsApp,
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
        flavor: ``kibana`` or ``opensearch-dashboards`` (or its :class:`DashboardsApp`).
        sort_field: sorted newest first on this field when given.
        query: a KQL query (``type : job``).
        description: shown in the saved objects list.
    """
    app = dashboards_app(flavor)
    attributes: dict[str, Any] = {
        "title": title,
        "description": description,
        "columns": list(columns),
        "sort": [[sort_field, "desc"]] if sort_field else [],
        "kibanaSavedObjectMeta": {"searchSourceJSON": search_source(query)},
        **copy.deepcopy(app.saved_search_attrs),
    }
    obj = {
        "type": "search",
        "id": object_id,
        "attributes": attributes,
        "references": [{"name": SEARCH_SOURCE_REF, "type": "index-pattern", "id": data_view_ref}],
    }
    return app.stamp(obj)


def hybrid_index_objects(
    index: str, mapping: Mapping[str, Any], *, flavor: DashboardsFlavor | DashboardsApp
) -> list[SavedObject]:
    """The data view of a hybrid index and a saved search showing its text and model id.

    Args:
        index: the index, alias or pattern.
        mapping: its mapping (with eshybrid's ``_meta`` when the mappings package built it).
        flavor: ``kibana`` or ``opensearch-dashboards`` (or its :class:`DashboardsApp`).

    Returns:
        ``[data view, saved search]``.
    """
    fields = mapping_fields(mapping)
    view = data_view(title=index, mapping=mapping, flavor=flavor, time_field_name=time_field(mapping))
    wanted: list[str] = []
    for vf, info in (eshybrid_meta(mapping).get("vector_fields") or {}).items():
        info = info if isinstance(info, Mapping) else {}
        wanted.extend(str(name) for name in info.get("source_fields") or ())
        wanted.append(f"eshybrid_meta.{vf}.model_id")
    if not wanted:  # not built by eshybrid: show the text fields
        wanted = [name for name, kind in fields.items() if kind == "text"][:6]
    search = saved_search(
        object_id=f"eshybrid-search-{slug(index)}",
        title=f"eshybrid: {index} documents",
        data_view_ref=view["id"],
        columns=list(dict.fromkeys(present(fields, wanted))),
        flavor=flavor,
        sort_field=view["attributes"].get("timeFieldName"),
        description="Text fields and the embedding model of each document; vectors are hidden.",
    )
    return [view, search]


def to_ndjson(objects: Iterable[SavedObject]) -> str:
    """One object per line, keys sorted, as the Saved Objects import API reads them."""
    return "".join(json.dumps(obj, sort_keys=True, ensure_ascii=False) + "\n" for obj in objects)
