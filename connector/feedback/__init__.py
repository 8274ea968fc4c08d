"""The feedback loop: click models, judgments from clicks, interleaving and A/B experiments, promotion.

Reads the UBI records of :mod:`connector.ubi` (from the indexes or JSON lines); writes BEIR
folders that ``eshybrid eval`` / ``tune`` take, and experiment winners into the index's
``search_defaults`` (the writer ``tune`` uses).
"""

from __future__ import annotations

from connector.feedback.clickmodels import CLICK_MODELS, ClickLog, ClickModelFit, ClickModelName, fit_click_model
from connector.feedback.experiment import (
    ArmConfig,
    ArmStats,
    ExperimentReport,
    ExperimentSpec,
    promote,
    report_experiment,
    searches_needed_ab,
    searches_needed_interleave,
    sign_test_p,
)
from connector.feedback.judgments import (
    DEFAULT_CLICK_MODEL,
    Judgments,
    build_judgments,
    click_log_from_records,
    grade_fit,
    query_key,
    write_beir,
)
from connector.feedback.store import RecordCounts, export_records, import_records, read_events, read_queries
from connector.ubi.interleave import Interleaved, assign_arm, credit_clicks, team_draft

__all__ = [
    "CLICK_MODELS",
    "DEFAULT_CLICK_MODEL",
    "ArmConfig",
    "ArmStats",
    "ClickLog",
    "ClickModelFit",
    "ClickModelName",
    "ExperimentReport",
    "ExperimentSpec",
    "Interleaved",
    "Judgments",
    "RecordCounts",
    "assign_arm",
    "build_judgments",
    "click_log_from_records",
    "credit_clicks",
    "export_records",
    "fit_click_model",
    "grade_fit",
    "import_records",
    "promote",
    "query_key",
    "read_events",
    "read_queries",
    "report_experiment",
    "searches_needed_ab",
    "searches_needed_interleave",
    "sign_test_p",
    "team_draft",
    "write_beir",
]
