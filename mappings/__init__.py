"""Index mappings and settings for hybrid (BM25 + kNN) search, as pure functions.

``mappings`` never talks to a cluster: it turns field specifications and a
:class:`connector.cluster.capabilities.Capabilities` into request bodies.
"""

from __future__ import annotations

from mappings.builders import (
    BOOKKEEPING_FIELD,
    MAPPING_VERSION,
    bookkeeping_mapping,
    build_add_vector_field_body,
    build_index_body,
    build_index_meta,
    build_index_settings,
    knn_enabled,
    merge_index_meta,
    text_field_mapping,
    vector_field_mapping,
    vector_field_meta,
)
from mappings.fields import BUILTIN_ANALYZERS, DEFAULT_VECTOR_FIELD, TextField, VectorField

__all__ = [
    "BOOKKEEPING_FIELD",
    "BUILTIN_ANALYZERS",
    "DEFAULT_VECTOR_FIELD",
    "MAPPING_VERSION",
    "TextField",
    "VectorField",
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
