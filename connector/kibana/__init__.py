"""Kibana / OpenSearch Dashboards saved objects for hybrid indices, jobs and the search log."""

from __future__ import annotations

from connector.kibana.objects import (
    VECTOR_FIELD_TYPES,
    DashboardsFlavor,
    SavedObject,
    dashboards_flavor,
    data_view,
    data_view_id,
    hybrid_index_objects,
    jobs_objects,
    mapping_fields,
    named_fields,
    saved_search,
    search_log_objects,
    time_field,
    to_ndjson,
    vector_fields,
)

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
