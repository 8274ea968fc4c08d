"""The relevance workbench: two search configurations side by side in the browser, hits rated into judgments.

``eshybrid workbench --index NAME`` serves it (:mod:`connector.workbench.server`); the routes
(:mod:`connector.workbench.web`) are framework-free so another app can mount them. Grades live in
``eshybrid-judgments`` (:mod:`connector.workbench.store`) and export as a BEIR folder for ``eval``/``tune``.
"""

from __future__ import annotations

from connector.workbench.config import SideConfig, parse_side, presets, side_to_url
from connector.workbench.server import WorkbenchServer, build_workbench
from connector.workbench.store import DEFAULT_JUDGMENTS_INDEX, JudgmentStore, QueryGrades
from connector.workbench.web import WebRequest, WebResponse, Workbench

__all__ = [
    "DEFAULT_JUDGMENTS_INDEX",
    "JudgmentStore",
    "QueryGrades",
    "SideConfig",
    "WebRequest",
    "WebResponse",
    "Workbench",
    "WorkbenchServer",
    "build_workbench",
    "parse_side",
    "presets",
    "side_to_url",
]
