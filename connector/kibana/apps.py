"""Kibana vs OpenSearch Dashboards: every difference between the two apps, as values of ONE object.

The builders take a :class:`DashboardsApp` (or a flavor name, turned into one by
:func:`dashboards_app`) and read what differs from it: how objects are stamped with
migration versions, the attributes only one app knows, how dashboards name panel
references, and what charts are drawn with (Lens on Kibana; data-table visualizations
on Dashboards, which has no Lens).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal

from connector.errors import ConfigError

__all__ = [
    "KIBANA",
    "OPENSEARCH_DASHBOARDS",
    "DashboardsApp",
    "DashboardsFlavor",
    "SavedObject",
    "dashboards_app",
    "dashboards_flavor",
]

DashboardsFlavor = Literal["kibana", "opensearch-dashboards"]
SavedObject = dict[str, Any]


@dataclass(frozen=True)
class DashboardsApp:
    """What one dashboards app needs in the saved objects it imports."""

    flavor: DashboardsFlavor
    charts: Literal["lens", "table"]
    """Lens visualizations (Kibana) or data-table visualizations (Dashboards)."""
    type_versions: Mapping[str, str]
    """Migration version stamped per saved-object type."""
    core_version: str | None
    """Kibana's ``coreMigrationVersion`` (with ``typeMigrationVersion``); None: a ``migrationVersion`` map."""
    describes_fields: bool
    """Data views carry a display name and ``fieldAttrs`` (labels and descriptions from ``_meta``)."""
    data_view_attrs: Mapping[str, Any]
    saved_search_attrs: Mapping[str, Any]
    dashboard_attrs: Mapping[str, Any]
    panel_attrs: Mapping[str, Any]
    """Set on each panel of a dashboard's ``panelsJSON`` (after its defaults)."""
    panel_ref_name: str
    """A panel's ``panelRefName``; ``{n}`` is the 0-based panel number, ``{index}`` its ``panelIndex``."""
    panel_reference: str
    """The name of the panel's entry in ``references``; ``{ref}`` is its ``panelRefName``."""

    def stamp(self, obj: SavedObject) -> SavedObject:
        """``obj`` with the migration versions this app expects of its type (modified in place)."""
        kind = obj["type"]
        if self.core_version is None:
            obj["migrationVersion"] = {kind: self.type_versions[kind]}
        else:
            obj["coreMigrationVersion"] = self.core_version
            obj["typeMigrationVersion"] = self.type_versions[kind]
            obj["managed"] = False
        return obj

    def panel_names(self, n: int) -> tuple[str, str]:
        """``(panelRefName, reference name)`` of the ``n``-th (0-based) panel of a dashboard."""
        ref = self.panel_ref_name.format(n=n, index=n + 1)
        return ref, self.panel_reference.format(ref=ref, index=n + 1)


# Kibana migrates an object whose version is older than its own on import, and refuses a
# newer one, so these are the oldest versions whose shape the objects already have (8.x
# formats; Kibana 9 migrates them forward).
KIBANA: Final = DashboardsApp(
    flavor="kibana",
    charts="lens",
    type_versions={"index-pattern": "8.0.0", "search": "8.0.0", "lens": "8.9.0", "dashboard": "8.7.0"},
    core_version="8.8.0",
    describes_fields=True,
    data_view_attrs={"fieldFormatMap": "{}", "runtimeFieldMap": "{}", "allowNoIndex": True},
    saved_search_attrs={"grid": {}, "hideChart": False, "isTextBasedQuery": False},
    dashboard_attrs={},
    panel_attrs={"embeddableConfig": {"enhancements": {}}},
    panel_ref_name="panel_{index}",
    panel_reference="{index}:{ref}",
)
# OpenSearch Dashboards keeps Kibana 7.10's per-type migrationVersion and panel references.
OPENSEARCH_DASHBOARDS: Final = DashboardsApp(
    flavor="opensearch-dashboards",
    charts="table",
    type_versions={"index-pattern": "7.6.0", "search": "7.9.3", "visualization": "7.10.0", "dashboard": "7.9.3"},
    core_version=None,
    describes_fields=False,
    data_view_attrs={},
    saved_search_attrs={"hits": 0, "version": 1},
    dashboard_attrs={"hits": 0},
    panel_attrs={"version": "7.10.2"},
    panel_ref_name="panel_{n}",
    panel_reference="{ref}",
)
_APPS: Final[Mapping[str, DashboardsApp]] = {app.flavor: app for app in (KIBANA, OPENSEARCH_DASHBOARDS)}
_APP_OF_CLUSTER: Final[Mapping[str, DashboardsFlavor]] = {
    "elasticsearch": "kibana",
    "opensearch": "opensearch-dashboards",
}


def dashboards_flavor(cluster_flavor: str) -> DashboardsFlavor:
    """The dashboards app of a cluster flavor (``elasticsearch`` -> ``kibana``); an app's own name is kept."""
    if cluster_flavor in _APPS:
        return _APPS[cluster_flavor].flavor
    if cluster_flavor in _APP_OF_CLUSTER:
        return _APP_OF_CLUSTER[cluster_flavor]
    raise ConfigError(
        f"unknown flavor {cluster_flavor!r}: use kibana or opensearch-dashboards (or auto with a cluster)",
        field="flavor",
    )


def dashboards_app(app: DashboardsFlavor | DashboardsApp) -> DashboardsApp:
    """The :class:`DashboardsApp` of a flavor name (an app is returned as it is)."""
    return app if isinstance(app, DashboardsApp) else _APPS[dashboards_flavor(app)]
