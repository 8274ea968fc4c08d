"""Pure builders of index bodies, mapping updates and ``_meta`` (dict in, dict out).

Two entry points:

- :func:`build_index_body` -- the ``PUT /<index>`` body of a new hybrid index
  (BM25 text fields, vector fields, bookkeeping fields, settings, ``_meta``);
- :func:`build_add_vector_field_body` -- the ``PUT /<index>/_mapping`` body that
  adds a vector field to an existing BM25 index without touching its fields.

Nothing here talks to a cluster; the server's differences come from a
:class:`connector.cluster.capabilities.Capabilities`
(``Capabilities.from_version("opensearch", "2.19.1")`` when no cluster is at hand).
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from connector.cluster.capabilities import Capabilities
from connector.errors import ConfigError
from mappings._vector import check_against_server, vector_field_mapping
from mappings.fields import BUILTIN_ANALYZERS, TextField, VectorField

__all__ = [
    "BOOKKEEPING_FIELD",
    "MAPPING_VERSION",
    "bookkeeping_mapping",
    "build_add_vector_field_body",
    "build_index_body",
    "build_index_meta",
    "build_index_settings",
    "knn_enabled",
    "merge_index_meta",
    "text_field_mapping",
    "vector_field_mapping",
    "vector_field_meta",
]

JsonDict = dict[str, Any]

# Version of the layout eshybrid writes (``_meta``, bookkeeping fields); bump on a change.
MAPPING_VERSION = 1
# Per-document bookkeeping written by backfill: eshybrid_meta.<vector_field>.model_id / text_hash.
BOOKKEEPING_FIELD = "eshybrid_meta"


def text_field_mapping(field: TextField) -> JsonDict:
    """The mapping of one BM25 text field (plus its ``keyword`` subfield when asked)."""
    body: JsonDict = {"type": "text", "analyzer": field.analyzer}
    if field.search_analyzer is not None:
        body["search_analyzer"] = field.search_analyzer
    if field.keyword_subfield:
        body["fields"] = {"keyword": {"type": "keyword", "ignore_above": field.keyword_ignore_above}}
    return body


def bookkeeping_mapping(vector_fields: Iterable[str]) -> JsonDict:
    """The ``eshybrid_meta`` object: ``<vector_field>.model_id`` and ``.text_hash`` keywords."""
    per_field = {"properties": {"model_id": {"type": "keyword"}, "text_hash": {"type": "keyword"}}}
    return {"properties": {name: copy.deepcopy(per_field) for name in vector_fields}}


def vector_field_meta(field: VectorField) -> JsonDict:
    """What ``_meta.eshybrid.vector_fields.<name>`` records about a vector field."""
    return {
        "model_id": field.model_id,
        "dims": field.dims,
        "similarity": field.similarity,
        "pooling": field.pooling,
        "normalized": field.normalized,
        "source_fields": list(field.source_fields),
        "template": field.template,
    }


def build_index_meta(vector_fields: Sequence[VectorField], *, migrations_current: str | None = None) -> JsonDict:
    """The index ``_meta`` block of a new hybrid index (see docs/contracts.md)."""
    return {
        "eshybrid": {
            "mapping_version": MAPPING_VERSION,
            "vector_fields": {f.name: vector_field_meta(f) for f in vector_fields},
            "migrations": {"current": migrations_current},
        }
    }


def merge_index_meta(existing: Mapping[str, Any] | None, vector_field: VectorField) -> JsonDict:
    """``existing`` ``_meta`` with ``vector_field`` recorded; every other key kept.

    ``PUT _mapping`` replaces ``_meta`` wholesale, so an update must send the merge.
    """
    merged: JsonDict = copy.deepcopy(dict(existing or {}))
    ours = merged.get("eshybrid")
    if ours is not None and not isinstance(ours, Mapping):
        raise ConfigError(
            "the index _meta has an 'eshybrid' key that is not an object; it was not written by eshybrid",
            field="_meta.eshybrid",
        )
    ours = dict(ours or {})
    ours["mapping_version"] = MAPPING_VERSION
    vector_fields = dict(ours.get("vector_fields") or {})
    vector_fields[vector_field.name] = vector_field_meta(vector_field)
    ours["vector_fields"] = vector_fields
    ours.setdefault("migrations", {"current": None})
    merged["eshybrid"] = ours
    return merged


def build_index_settings(
    caps: Capabilities,
    *,
    number_of_shards: int | None = None,
    number_of_replicas: int | None = None,
    analysis: Mapping[str, Any] | None = None,
    refresh_interval: str | None = None,
) -> JsonDict:
    """Index settings: ``index.knn: true`` where the server needs it, plus what is asked.

    Options left ``None`` are not written (the cluster's defaults apply).
    """
    index: JsonDict = {}
    if caps.requires_knn_index_setting:
        index["knn"] = True
    for key, value in (
        ("number_of_shards", number_of_shards),
        ("number_of_replicas", number_of_replicas),
    ):
        if value is not None:
            if value < (1 if key == "number_of_shards" else 0):
                raise ConfigError(f"{key} must be >= {1 if key == 'number_of_shards' else 0}, got {value}", field=key)
            index[key] = value
    if refresh_interval is not None:
        index["refresh_interval"] = refresh_interval
    settings: JsonDict = {"index": index}
    if analysis:
        settings["analysis"] = copy.deepcopy(dict(analysis))
    return settings


def build_index_body(
    caps: Capabilities,
    *,
    text_fields: Sequence[TextField],
    vector_fields: Sequence[VectorField] = (),
    extra_properties: Mapping[str, Any] | None = None,
    number_of_shards: int | None = None,
    number_of_replicas: int | None = None,
    analysis: Mapping[str, Any] | None = None,
    refresh_interval: str | None = None,
    migrations_current: str | None = None,
) -> JsonDict:
    """The ``PUT /<index>`` body of a hybrid index.

    Args:
        caps: the target server's capabilities.
        text_fields: BM25 text fields.
        vector_fields: dense vector fields (usually one, named ``embedding``).
        extra_properties: other fields of the documents, mapped as given (ids, prices, dates...).
        number_of_shards, number_of_replicas, refresh_interval: index settings; ``None``: cluster default.
        analysis: the index ``analysis`` settings (custom analyzers named by text fields).
        migrations_current: the migration revision this mapping corresponds to.

    Returns:
        ``{"settings": ..., "mappings": {"_meta": ..., "properties": ...}}``.

    Raises:
        ConfigError: a duplicate field, an unknown analyzer, or a vector option the
            server does not offer; the message names the field.
    """
    _check_unique([f.name for f in text_fields] + [f.name for f in vector_fields] + list(extra_properties or {}))
    custom = _custom_analyzers(analysis)
    properties: JsonDict = {}
    for text in text_fields:
        _check_analyzers(text, custom)
        properties[text.name] = text_field_mapping(text)
    for vector in vector_fields:
        properties[vector.name] = vector_field_mapping(caps, vector)
    for name, definition in (extra_properties or {}).items():
        properties[name] = copy.deepcopy(definition)
    if vector_fields:
        if BOOKKEEPING_FIELD in properties:
            raise ConfigError(f"{BOOKKEEPING_FIELD!r} is reserved for eshybrid's bookkeeping", field=BOOKKEEPING_FIELD)
        properties[BOOKKEEPING_FIELD] = bookkeeping_mapping(f.name for f in vector_fields)
    settings = build_index_settings(
        caps,
        number_of_shards=number_of_shards,
        number_of_replicas=number_of_replicas,
        analysis=analysis,
        refresh_interval=refresh_interval,
    )
    meta = build_index_meta(vector_fields, migrations_current=migrations_current)
    return {"settings": settings, "mappings": {"_meta": meta, "properties": properties}}


def build_add_vector_field_body(
    caps: Capabilities,
    *,
    existing_mapping: Mapping[str, Any],
    vector_field: VectorField,
    index_settings: Mapping[str, Any] | None = None,
) -> JsonDict:
    """The ``PUT /<index>/_mapping`` body that adds a vector field to an existing index.

    Only the vector field, its bookkeeping fields and the merged ``_meta`` are
    sent: existing fields are untouched (``PUT _mapping`` merges properties but
    replaces ``_meta``, hence the merge).  Sending it again is harmless.

    Args:
        caps: the server's capabilities.
        existing_mapping: the index's current mapping (``GET /<index>/_mapping``'s ``mappings``).
        vector_field: the field to add.
        index_settings: the index's settings (``GET /<index>/_settings``'s ``settings``);
            on OpenSearch they tell whether ``index.knn`` is on.  Pass them to get a
            clear error instead of the server's.

    Returns:
        ``{"_meta": ..., "properties": {<vector>: ..., "eshybrid_meta": ...}}``.

    Raises:
        ConfigError: the name is taken by a different field, or (OpenSearch) the index
            was created without ``index.knn: true``, a final setting: use reindex.
    """
    check_against_server(caps, vector_field)
    if caps.requires_knn_index_setting and index_settings is not None and not knn_enabled(index_settings):
        raise ConfigError(
            f"vector field {vector_field.name!r}: this {caps.display_name} index was created without "
            "index.knn: true, a final setting, so an ANN vector field cannot be added in place; "
            "copy it into a new index with the hybrid mapping instead (eshybrid reindex)",
            field=vector_field.name,
            option="index.knn",
        )
    properties = dict(existing_mapping.get("properties") or {})
    wanted = vector_field_mapping(caps, vector_field)
    _check_existing_vector(properties.get(vector_field.name), wanted, vector_field)
    existing_book = properties.get(BOOKKEEPING_FIELD)
    if existing_book is not None and "properties" not in existing_book:
        raise ConfigError(
            f"the index already maps {BOOKKEEPING_FIELD!r} as {existing_book.get('type', 'something else')}; "
            "eshybrid needs that name for its per-document bookkeeping",
            field=BOOKKEEPING_FIELD,
        )
    return {
        "_meta": merge_index_meta(existing_mapping.get("_meta"), vector_field),
        "properties": {
            vector_field.name: wanted,
            BOOKKEEPING_FIELD: bookkeeping_mapping([vector_field.name]),
        },
    }


def knn_enabled(index_settings: Mapping[str, Any]) -> bool:
    """Whether OpenSearch index settings (nested or flat keys, ``true`` or ``"true"``) have ``index.knn`` on."""
    settings = index_settings.get("settings", index_settings)
    index = settings.get("index")
    value = index.get("knn") if isinstance(index, Mapping) else settings.get("index.knn")
    return value is True or str(value).lower() == "true"


def _check_existing_vector(existing: Mapping[str, Any] | None, wanted: JsonDict, field: VectorField) -> None:
    if existing is None:
        return
    dims_key = "dims" if "dims" in wanted else "dimension"
    if existing.get("type") != wanted["type"] or existing.get(dims_key) != wanted[dims_key]:
        found = existing.get("type", "an object")
        raise ConfigError(
            f"vector field {field.name!r}: the index already has a field {field.name!r} "
            f"({found}, {dims_key} {existing.get(dims_key)}) that differs from the wanted "
            f"{wanted['type']} with {dims_key} {wanted[dims_key]}; pick another field name or reindex",
            field=field.name,
        )


def _check_unique(names: Sequence[str]) -> None:
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise ConfigError(f"field {name!r} is defined twice", field=name)
        seen.add(name)


def _custom_analyzers(analysis: Mapping[str, Any] | None) -> frozenset[str]:
    return frozenset((analysis or {}).get("analyzer", {}) or {})


def _check_analyzers(field: TextField, custom: frozenset[str]) -> None:
    for option, name in (("analyzer", field.analyzer), ("search_analyzer", field.search_analyzer)):
        if name is not None and name not in BUILTIN_ANALYZERS and name not in custom:
            raise ConfigError(
                f"text field {field.name!r}: unknown {option} {name!r}; use a built-in analyzer "
                "(standard, english, ...) or define it under analysis.analyzer",
                field=field.name,
                option=option,
            )
