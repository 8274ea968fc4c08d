"""The nested ``passages`` field: one vector per passage of a long text, with its character offsets.

```
"passages": {"type": "nested", "properties": {
    "vector": <dense_vector | knn_vector>,      the passage's embedding
    "start": integer, "end": integer,           its span in the rendered document text
    "text": text, not indexed                   the passage as embedded (shown by explain)
}}
```

A document holds its passages as one array: a job rewrites the whole array, so a document whose text
shrinks loses its old passages. ``_meta.eshybrid.passage_fields.<name>`` records the model and how the
passages were cut (the job writes the cut into it when it starts); the per-document bookkeeping
(``eshybrid_meta.<name>.text_hash``) makes re-embedding incremental, as for a whole-document vector.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from connector.cluster.capabilities import Capabilities
from connector.errors import ConfigError
from mappings._vector import check_against_server, vector_field_mapping
from mappings.builders import BOOKKEEPING_FIELD, bookkeeping_mapping, knn_enabled, vector_field_meta
from mappings.fields import VectorField

__all__ = [
    "PASSAGE_VECTOR",
    "build_add_passages_field_body",
    "passages_field_mapping",
    "passages_meta",
    "record_passages_cut",
]

JsonDict = dict[str, Any]

# The vector's name inside each passage: the kNN path is ``<field>.vector``.
PASSAGE_VECTOR = "vector"


def passages_field_mapping(caps: Capabilities, field: VectorField) -> JsonDict:
    """The nested mapping of a passages field named ``field.name`` (its vector as ``field`` says)."""
    return {
        "type": "nested",
        "properties": {
            PASSAGE_VECTOR: vector_field_mapping(caps, field),
            "start": {"type": "integer"},
            "end": {"type": "integer"},
            "text": {"type": "text", "index": False},
        },
    }


def passages_meta(field: VectorField, cut: Mapping[str, Any] | None) -> JsonDict:
    """What ``_meta.eshybrid.passage_fields.<name>`` records: the vector's model and how passages were cut."""
    return {**vector_field_meta(field), "vector_path": f"{field.name}.{PASSAGE_VECTOR}", "cut": dict(cut or {})}


def build_add_passages_field_body(
    caps: Capabilities,
    *,
    existing_mapping: Mapping[str, Any],
    field: VectorField,
    cut: Mapping[str, Any] | None = None,
    index_settings: Mapping[str, Any] | None = None,
) -> JsonDict:
    """The ``PUT /<index>/_mapping`` body that adds a nested passages field (idempotent).

    Raises:
        ConfigError: the name is taken by another field, or (OpenSearch) the index has no ``index.knn``.
    """
    check_against_server(caps, field)
    if caps.requires_knn_index_setting and index_settings is not None and not knn_enabled(index_settings):
        raise ConfigError(
            f"passages field {field.name!r}: this {caps.display_name} index was created without index.knn: true; "
            "copy it into a new index with the hybrid mapping instead (eshybrid reindex)",
            field=field.name,
            option="index.knn",
        )
    properties = existing_mapping.get("properties") or {}
    wanted = passages_field_mapping(caps, field)
    existing = properties.get(field.name)
    if existing is not None and (
        existing.get("type") != "nested" or PASSAGE_VECTOR not in (existing.get("properties") or {})
    ):
        raise ConfigError(
            f"the index already has a field {field.name!r} ({existing.get('type', 'an object')}) that is not a "
            "passages field; pick another name with --param passages_field=...",
            field=field.name,
        )
    meta: JsonDict = copy.deepcopy(dict(existing_mapping.get("_meta") or {}))
    ours = dict(meta.get("eshybrid") or {})
    fields = dict(ours.get("passage_fields") or {})
    fields[field.name] = passages_meta(field, cut or (fields.get(field.name) or {}).get("cut"))
    ours["passage_fields"] = fields
    meta["eshybrid"] = ours
    return {
        "_meta": meta,
        "properties": {field.name: wanted, BOOKKEEPING_FIELD: bookkeeping_mapping([field.name])},
    }


def record_passages_cut(existing_mapping: Mapping[str, Any], name: str, cut: Mapping[str, Any]) -> JsonDict:
    """The ``PUT _mapping`` body that records in ``_meta`` how the job cut the passages of ``name``."""
    meta: JsonDict = copy.deepcopy(dict(existing_mapping.get("_meta") or {}))
    ours = dict(meta.get("eshybrid") or {})
    fields = dict(ours.get("passage_fields") or {})
    fields[name] = {**dict(fields.get(name) or {}), "cut": dict(cut)}
    ours["passage_fields"] = fields
    meta["eshybrid"] = ours
    return {"_meta": meta}
