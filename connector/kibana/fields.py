"""Reading an index mapping for saved objects: its fields, vector fields, time field, descriptions.

Every field a saved object names is picked from the mapping it is generated from, so a
field that is not in the index never appears in a data view, a column or a chart.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Final

__all__ = [
    "VECTOR_FIELD_TYPES",
    "aggregatable",
    "eshybrid_meta",
    "field_attrs",
    "first_present",
    "mapping_fields",
    "present",
    "time_field",
    "vector_fields",
]

VECTOR_FIELD_TYPES: Final = frozenset({"dense_vector", "knn_vector", "rank_vectors", "sparse_vector"})

_Describe = Callable[[str, str], None]


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


def eshybrid_meta(mapping: Mapping[str, Any]) -> Mapping[str, Any]:
    """The ``_meta.eshybrid`` part of a mapping (``{}`` when eshybrid did not build it)."""
    meta = (mapping.get("_meta") or {}).get("eshybrid") or {}
    return meta if isinstance(meta, Mapping) else {}


def vector_fields(mapping: Mapping[str, Any]) -> list[str]:
    """The vector fields of a mapping (by type, plus any ``_meta.eshybrid.vector_fields`` one)."""
    fields = mapping_fields(mapping)
    names = [path for path, kind in fields.items() if kind in VECTOR_FIELD_TYPES]
    for name in eshybrid_meta(mapping).get("vector_fields") or {}:
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


def first_present(fields: Mapping[str, str], candidates: Iterable[str]) -> str | None:
    """The first of ``candidates`` the mapping has, or None."""
    return next((name for name in candidates if name in fields), None)


def present(fields: Mapping[str, str], names: Iterable[str]) -> list[str]:
    """``names`` the mapping has, vector fields left out (columns never show raw vectors)."""
    return [name for name in names if name in fields and fields[name] not in VECTOR_FIELD_TYPES]


def aggregatable(fields: Mapping[str, str], name: str | None) -> str | None:
    """``name`` when it can be bucketed, else its ``.keyword`` subfield when it has one."""
    if name is None:
        return None
    if fields.get(name) == "text":
        return f"{name}.keyword" if fields.get(f"{name}.keyword") == "keyword" else None
    return name


def field_attrs(mapping: Mapping[str, Any]) -> dict[str, dict[str, str]]:
    """Labels and descriptions for Kibana's ``fieldAttrs``, from ``_meta`` and field ``meta``."""
    fields = mapping_fields(mapping)
    attrs: dict[str, dict[str, str]] = {}

    def describe(path: str, description: str, label: str | None = None) -> None:
        if path not in fields:
            return
        entry = attrs.setdefault(path, {})
        entry.setdefault("customDescription", description[:300])
        if label:
            entry.setdefault("customLabel", label)

    meta = eshybrid_meta(mapping)
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


def _field_meta_descriptions(properties: Mapping[str, Any], prefix: str, describe: _Describe) -> None:
    # Elasticsearch's per-field `meta` ({"description": ..., "unit": ...}) is also shown.
    for name, spec in properties.items():
        if not isinstance(spec, Mapping):
            continue
        field_meta = spec.get("meta")
        if isinstance(field_meta, Mapping) and isinstance(field_meta.get("description"), str):
            describe(prefix + name, field_meta["description"])
        if "properties" in spec:
            _field_meta_descriptions(spec["properties"], prefix + name + ".", describe)
