"""Kibana / OpenSearch Dashboards saved objects for hybrid indices, jobs and the search log.

- :mod:`~connector.kibana.apps`: Kibana vs Dashboards, the per-app values behind one object;
- :mod:`~connector.kibana.fields`: reading a mapping (fields, vector fields, time field, descriptions);
- :mod:`~connector.kibana.objects`: data views and saved searches, the pair for a hybrid index, ndjson;
- :mod:`~connector.kibana.charts`: Lens charts, data tables and the dashboards that lay them out;
- :mod:`~connector.kibana.dashboards`: the jobs and search-log dashboards;
- :mod:`~connector.kibana.ubi`: the shoppers dashboard over the UBI indexes (zero results, clicks by position);
- :mod:`~connector.kibana.export`: the bundles ``eshybrid kibana export|defaults`` write.

All builders are pure: a mapping in, saved objects (dicts) out, importable with the Saved
Objects API (``POST /api/saved_objects/_import``).
"""

from __future__ import annotations

from connector.kibana.apps import (
    KIBANA,
    OPENSEARCH_DASHBOARDS,
    DashboardsApp,
    DashboardsFlavor,
    SavedObject,
    dashboards_app,
    dashboards_flavor,
)
from connector.kibana.dashboards import jobs_objects, search_log_objects
from connector.kibana.export import (
    default_bundles,
    demo_index_body,
    demo_index_mapping,
    export_bundle,
    write_bundle,
)
from connector.kibana.fields import VECTOR_FIELD_TYPES, mapping_fields, time_field, vector_fields
from connector.kibana.objects import data_view, data_view_id, hybrid_index_objects, saved_search, to_ndjson
from connector.kibana.ubi import ubi_objects

__all__ = [
    "DashboardsApp",
    "DashboardsFlavor",
    "KIBANA",
    "OPENSEARCH_DASHBOARDS",
    "SavedObject",
    "VECTOR_FIELD_TYPES",
    "dashboards_app",
    "dashboards_flavor",
    "data_view",
    "data_view_id",
    "default_bundles",
    "demo_index_body",
    "demo_index_mapping",
    "export_bundle",
    "hybrid_index_objects",
    "jobs_objects",
    "mapping_fields",
    "saved_search",
    "search_log_objects",
    "time_field",
    "to_ndjson",
    "ubi_objects",
    "vector_fields",
    "write_bundle",
]
