"""The Grafana dashboard (docker/grafana/eshybrid.json) reads only documented series, and shows every one."""

from __future__ import annotations

import json
import re
from pathlib import Path

from connector.observe import JOB_SERIES, SEARCH_SERIES, SERVICE_SERIES

DASHBOARD = Path(__file__).resolve().parents[3] / "docker" / "grafana" / "eshybrid.json"
_SUFFIXES = ("_bucket", "_sum", "_count")


def _series(expr: str) -> set[str]:
    names = set(re.findall(r"\beshybrid_[a-z_]+", expr))
    return {next((n[: -len(s)] for s in _SUFFIXES if n.endswith(s)), n) for n in names}


def test_the_dashboard_reads_the_documented_series_and_every_one_of_them() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    documented = set(SEARCH_SERIES) | set(SERVICE_SERIES) | set(JOB_SERIES)
    used: set[str] = set()
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            assert target["datasource"]["uid"] == "${DS_PROMETHEUS}"
            used |= _series(target["expr"])
    assert used <= documented, used - documented
    assert documented <= used, documented - used
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))
