"""Versioned, ordered mapping migrations with their state in the cluster (alembic-like).

Revision files live in ``migrations/versions/<rev>_<slug>.py`` (``revision``,
``down_revision``, ``upgrade(ctx)``, ``downgrade(ctx)``). :class:`Migrator` runs them
against one target index under a cluster-wide lock; ``eshybrid migrate`` is its CLI.
Migrations change mappings and ``_meta``; they never embed (that is the backfill's job).
"""

from __future__ import annotations

from migrations.context import PARAM_HELP, MigrationContext
from migrations.graph import DEFAULT_VERSIONS_DIR, Revision, RevisionGraph, load_revisions
from migrations.runner import MigrationSettings, Migrator, PlanStep, Status
from migrations.state import DEFAULT_MIGRATIONS_INDEX, LockInfo, MigrationLock, MigrationStore

__all__ = [
    "DEFAULT_MIGRATIONS_INDEX",
    "DEFAULT_VERSIONS_DIR",
    "PARAM_HELP",
    "LockInfo",
    "MigrationContext",
    "MigrationLock",
    "MigrationSettings",
    "MigrationStore",
    "Migrator",
    "PlanStep",
    "Revision",
    "RevisionGraph",
    "Status",
    "load_revisions",
]
